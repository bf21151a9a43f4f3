//! Lookups per second with 2 reader threads and 1 writer thread, through
//! `portreg::compat::HttpEndpointRegistry` against the reference design
//! (`Mutex<HashMap<String, Option<u16>>>`) and an `RwLock<HashMap<…>>`, in
//! one run. std only.
//!
//!   cargo bench --offline -p portreg --bench lookups [-- --seconds S --backends N --rounds R]
//!
//! Two writer loads: "flat out" (the writer re-registers ports as fast as it
//! can) and "paced" (one re-register every 100 µs, closer to a broker, where
//! daemons report ports rarely). Each cell is the median of R rounds; the
//! three registries take turns within a round so that machine noise hits
//! them alike. Besides lookups/s (wall clock) it prints lookups per second
//! of CPU time the readers got (from /proc/thread-self/stat), which stays
//! meaningful when other work shares the machine.
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, RwLock};
use std::time::{Duration, Instant};

use portreg::compat::{BackendId, HttpEndpointRegistry};

trait Endpoints: Send + Sync + 'static {
    const NAME: &'static str;
    fn create() -> Self;
    fn register(&self, id: BackendId, port: u16) -> Option<u16>;
    fn lookup(&self, id: &str) -> Option<u16>;
}

impl Endpoints for HttpEndpointRegistry {
    const NAME: &'static str = "portreg compat";
    fn create() -> Self {
        HttpEndpointRegistry::new()
    }
    fn register(&self, id: BackendId, port: u16) -> Option<u16> {
        self.register_backend_http_endpoint(id, port)
    }
    fn lookup(&self, id: &str) -> Option<u16> {
        HttpEndpointRegistry::lookup(self, id)
    }
}

/// The reference design.
struct MutexMap(Mutex<HashMap<BackendId, Option<u16>>>);

impl Endpoints for MutexMap {
    const NAME: &'static str = "Mutex<HashMap>";
    fn create() -> Self {
        MutexMap(Mutex::new(HashMap::new()))
    }
    fn register(&self, id: BackendId, port: u16) -> Option<u16> {
        self.0.lock().unwrap().insert(id, Some(port)).flatten()
    }
    fn lookup(&self, id: &str) -> Option<u16> {
        self.0.lock().unwrap().get(id).copied().flatten()
    }
}

struct RwLockMap(RwLock<HashMap<BackendId, Option<u16>>>);

impl Endpoints for RwLockMap {
    const NAME: &'static str = "RwLock<HashMap>";
    fn create() -> Self {
        RwLockMap(RwLock::new(HashMap::new()))
    }
    fn register(&self, id: BackendId, port: u16) -> Option<u16> {
        self.0.write().unwrap().insert(id, Some(port)).flatten()
    }
    fn lookup(&self, id: &str) -> Option<u16> {
        self.0.read().unwrap().get(id).copied().flatten()
    }
}

#[derive(Clone, Copy)]
struct Config {
    seconds: f64,
    backends: usize,
    rounds: usize,
    readers: usize,
    ticks_per_s: f64,
}

#[derive(Clone, Copy)]
struct Cell {
    lookups_per_s: f64,
    writes_per_s: f64,
    /// Lookups per second of CPU time the reader threads got: on a shared,
    /// loaded machine this shows the cost of a lookup (locking included)
    /// where wall-clock throughput mostly shows the scheduler.
    lookups_per_cpu_s: f64,
}

/// CPU time (user + system) of the calling thread so far, in seconds, from
/// /proc (std has no thread CPU clock); `None` where /proc is missing.
fn thread_cpu_s(ticks_per_s: f64) -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name, which is in parentheses: utime and
    // stime are the 12th and 13th of them.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_s)
}

fn clock_ticks_per_s() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// One timed run: `readers` threads look up every backend in turn, one
/// writer re-registers them; returns lookups/s (all readers) and writes/s.
fn run<E: Endpoints>(cfg: Config, pace: Option<Duration>) -> Cell {
    let ticks = cfg.ticks_per_s;
    let reg = Arc::new(E::create());
    let ids: Arc<Vec<String>> =
        Arc::new((0..cfg.backends).map(|i| format!("backend-{i:03}")).collect());
    for (i, id) in ids.iter().enumerate() {
        reg.register(id.clone(), 10_000 + i as u16);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let lookups = Arc::new(AtomicU64::new(0));
    let writes = Arc::new(AtomicU64::new(0));
    let reader_cpu_us = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(cfg.readers + 2));
    let mut threads = Vec::new();
    for r in 0..cfg.readers {
        let (reg, ids, stop, lookups, start, cpu) = (
            reg.clone(),
            ids.clone(),
            stop.clone(),
            lookups.clone(),
            start.clone(),
            reader_cpu_us.clone(),
        );
        threads.push(std::thread::spawn(move || {
            start.wait();
            let cpu0 = thread_cpu_s(ticks);
            let mut n = 0u64;
            let mut i = r * 7;
            let mut found = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..1024 {
                    i = if i + 1 == ids.len() { 0 } else { i + 1 };
                    found += reg.lookup(black_box(&ids[i])).is_some() as u64;
                }
                n += 1024;
            }
            assert_eq!(found, n, "every backend stays bound");
            lookups.fetch_add(n, Ordering::Relaxed);
            if let (Some(a), Some(b)) = (cpu0, thread_cpu_s(ticks)) {
                cpu.fetch_add(((b - a) * 1e6) as u64, Ordering::Relaxed);
            }
        }));
    }
    {
        let (reg, ids, stop, writes, start) =
            (reg.clone(), ids.clone(), stop.clone(), writes.clone(), start.clone());
        threads.push(std::thread::spawn(move || {
            start.wait();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let i = (n as usize * 13) % ids.len();
                black_box(reg.register(ids[i].clone(), 20_000 + (n % 1000) as u16));
                n += 1;
                if let Some(p) = pace {
                    std::thread::sleep(p);
                }
            }
            writes.fetch_add(n, Ordering::Relaxed);
        }));
    }
    start.wait();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(cfg.seconds));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let n = lookups.load(Ordering::Relaxed) as f64;
    let cpu_s = reader_cpu_us.load(Ordering::Relaxed) as f64 / 1e6;
    Cell {
        lookups_per_s: n / elapsed,
        writes_per_s: writes.load(Ordering::Relaxed) as f64 / elapsed,
        lookups_per_cpu_s: if cpu_s > 0.0 { n / cpu_s } else { f64::NAN },
    }
}

fn median(mut v: Vec<Cell>) -> Cell {
    v.sort_by(|a, b| a.lookups_per_s.total_cmp(&b.lookups_per_s));
    v[v.len() / 2]
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.windows(2)
        .find(|w| w[0] == name)
        .map(|w| w[1].parse().unwrap_or_else(|_| panic!("bad value for {name}")))
        .unwrap_or(default)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split_once(':').map(|(_, v)| v.trim().to_string()).unwrap_or_default())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    format!("{cpu}, {cores} hardware threads available")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let cfg = Config {
        seconds: arg(&args, "--seconds", 1.0),
        backends: arg(&args, "--backends", 64),
        rounds: arg(&args, "--rounds", 3),
        readers: 2,
        ticks_per_s: clock_ticks_per_s(),
    };
    assert!(cfg.backends >= 1 && cfg.backends <= 1000 && cfg.rounds >= 1);
    println!("machine: {}; libportreg {}", machine(), portreg::version_string());
    println!(
        "{} reader threads + 1 writer, {} backends, {} s per run, median of {} rounds",
        cfg.readers, cfg.backends, cfg.seconds, cfg.rounds
    );
    for (load, pace) in
        [("flat out", None), ("paced, 1 per 100 us", Some(Duration::from_micros(100)))]
    {
        let mut cells: [Vec<Cell>; 3] = Default::default();
        for _ in 0..cfg.rounds {
            cells[0].push(run::<HttpEndpointRegistry>(cfg, pace));
            cells[1].push(run::<MutexMap>(cfg, pace));
            cells[2].push(run::<RwLockMap>(cfg, pace));
        }
        let [a, b, c] = cells.map(median);
        println!();
        println!("writer {load}:");
        println!(
            "| registry | lookups/s | vs Mutex<HashMap> | writes/s | lookups per reader CPU-s | vs Mutex<HashMap> |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        for (name, cell) in
            [(HttpEndpointRegistry::NAME, a), (MutexMap::NAME, b), (RwLockMap::NAME, c)]
        {
            println!(
                "| {name} | {:.2} M | {:.2}x | {:.0} k | {:.2} M | {:.2}x |",
                cell.lookups_per_s / 1e6,
                cell.lookups_per_s / b.lookups_per_s,
                cell.writes_per_s / 1e3,
                cell.lookups_per_cpu_s / 1e6,
                cell.lookups_per_cpu_s / b.lookups_per_cpu_s
            );
        }
    }
}
