//! The safe API: states, versions, errors, iteration, waiting, events, and
//! many threads sharing one registry.
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use portreg::{Error, Options, Registry, State, Versioned};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn registry_and_handles_are_send_and_sync() {
    assert_send_sync::<Registry>();
    assert_send_sync::<portreg::Handle<'static>>();
    assert_send_sync::<Error>();
}

#[test]
fn a_backend_walks_through_every_state_with_growing_versions() {
    let reg = Registry::new().unwrap();
    assert_eq!(reg.get("zccache").unwrap(), Versioned::UNTRACKED);
    reg.track("zccache").unwrap();
    let pending = reg.get("zccache").unwrap();
    assert_eq!(pending.state, State::Pending);
    let prev = reg.register("zccache", 49152).unwrap();
    assert_eq!(prev, pending);
    let bound = reg.get("zccache").unwrap();
    assert_eq!(bound.state, State::Bound(49152));
    assert_eq!(reg.unbind("zccache").unwrap(), bound);
    let unbound = reg.get("zccache").unwrap();
    assert_eq!(unbound.state, State::Pending);
    assert_eq!(reg.untrack("zccache").unwrap(), unbound);
    assert_eq!(reg.get("zccache").unwrap(), Versioned::UNTRACKED);
    reg.track("zccache").unwrap();
    let again = reg.get("zccache").unwrap();
    let versions = [pending.version, bound.version, unbound.version, again.version];
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
}

#[test]
fn unbind_and_track_leave_other_states_alone() {
    let reg = Registry::new().unwrap();
    reg.track("a").unwrap();
    let v = reg.get("a").unwrap();
    assert_eq!(reg.unbind("a").unwrap(), v);
    assert_eq!(reg.get("a").unwrap(), v);
    reg.register("b", 7).unwrap();
    let b = reg.get("b").unwrap();
    reg.track("b").unwrap();
    assert_eq!(reg.get("b").unwrap(), b);
    assert_eq!(reg.unbind("nobody").unwrap(), Versioned::UNTRACKED);
    assert_eq!(reg.count(), 2);
}

#[test]
fn bad_ids_and_port_0_fail_and_change_nothing() {
    let reg = Registry::new().unwrap();
    let too_long = vec![b'x'; portreg::ID_MAX + 1];
    assert_eq!(reg.track(""), Err(Error::Invalid));
    assert_eq!(reg.track(&too_long), Err(Error::Invalid));
    assert_eq!(reg.register(&too_long, 1), Err(Error::Invalid));
    assert_eq!(reg.get(""), Err(Error::Invalid));
    assert_eq!(reg.lookup(""), None);
    assert_eq!(reg.register("a", 0), Err(Error::Range));
    assert_eq!(reg.count(), 0);
    assert_eq!(reg.changes(), 0);
    assert_eq!(reg.get("a").unwrap(), Versioned::UNTRACKED);
}

#[test]
fn ids_are_bytes_with_nul_allowed_and_255_bytes_long_at_most() {
    let reg = Registry::new().unwrap();
    reg.register(b"a\0b", 1).unwrap();
    reg.register(b"a", 2).unwrap();
    reg.register(vec![0xFFu8; portreg::ID_MAX], 3).unwrap();
    assert_eq!(reg.lookup(b"a\0b"), Some(1));
    assert_eq!(reg.lookup("a"), Some(2));
    assert_eq!(reg.lookup(vec![0xFFu8; portreg::ID_MAX]), Some(3));
    assert_eq!(reg.lookup(b"a\0"), None);
}

#[test]
fn conditional_updates_apply_only_on_the_expected_version() {
    let reg = Registry::new().unwrap();
    reg.register_if("a", 10, 0).unwrap();
    let v = reg.get("a").unwrap();
    assert_eq!(reg.register_if("a", 11, 0), Err(Error::Conflict));
    assert_eq!(reg.register_if("a", 11, v.version + 1), Err(Error::Conflict));
    assert_eq!(reg.untrack_if("a", v.version + 1), Err(Error::Conflict));
    assert_eq!(reg.get("a").unwrap(), v);
    assert_eq!(reg.register_if("a", 11, v.version).unwrap(), v);
    let w = reg.get("a").unwrap();
    assert_eq!(reg.untrack_if("a", w.version).unwrap(), w);
    assert_eq!(reg.lookup("a"), None);
}

#[test]
fn decode_errors_leave_the_registry_as_it_was() {
    let reg = Registry::new().unwrap();
    reg.register("z", 5).unwrap();
    let before = reg.get("z").unwrap();
    assert_eq!(reg.decode_and_register("z", &[0xFF; 8]), Err(Error::Decode));
    assert_eq!(reg.decode_and_register("z", &portreg::encode_ready(70_000)), Err(Error::Range));
    assert_eq!(reg.decode_and_register("z", &[]), Err(Error::Range));
    assert_eq!(reg.get("z").unwrap(), before);
    assert_eq!(reg.decode_and_register("z", &portreg::encode_ready(6)), Ok(6));
    assert_eq!(portreg::decode_ready(&portreg::encode_ready(u32::MAX)), Ok(u32::MAX));
}

#[test]
fn iteration_returns_every_tracked_backend_once() {
    let reg = Registry::new().unwrap();
    let mut expected = BTreeMap::new();
    for i in 0..200u16 {
        let id = format!("backend-{i}");
        if i % 3 == 0 {
            reg.track(&id).unwrap();
            expected.insert(id.into_bytes(), State::Pending);
        } else {
            reg.register(&id, i + 1).unwrap();
            expected.insert(id.into_bytes(), State::Bound(i + 1));
        }
    }
    reg.untrack("backend-1").unwrap();
    expected.remove(&b"backend-1"[..]);
    let mut seen = BTreeMap::new();
    let walk = reg.iter();
    for entry in &walk {
        assert!(seen.insert(entry.id.to_vec(), entry.state.state).is_none(), "returned twice");
    }
    drop(walk);
    assert_eq!(seen, expected);
}

#[test]
fn iterations_nest_and_writes_may_happen_during_one() {
    let reg = Registry::new().unwrap();
    reg.track("a").unwrap();
    reg.track("b").unwrap();
    let outer = reg.iter();
    let mut pairs = 0;
    for _ in &outer {
        reg.register("c", 3).unwrap();
        pairs += (&reg.iter()).into_iter().count();
    }
    drop(outer);
    assert!(pairs >= 2 * 2, "{pairs}");
    assert_eq!(reg.lookup("c"), Some(3));
}

#[test]
fn snapshot_is_sorted_and_outlives_the_registry() {
    let snap = {
        let reg = Registry::new().unwrap();
        for id in ["zz", "a", "m", "ab"] {
            reg.track(id).unwrap();
        }
        reg.register("m", 9).unwrap();
        reg.snapshot().unwrap()
    };
    let ids: Vec<&[u8]> = snap.iter().map(|e| &e.id[..]).collect();
    assert_eq!(ids, [&b"a"[..], b"ab", b"m", b"zz"]);
    assert_eq!(snap[2].state.state, State::Bound(9));
}

#[test]
fn wait_wakes_on_a_change_from_another_thread_and_times_out_otherwise() {
    let reg = Arc::new(Registry::new().unwrap());
    reg.track("zccache").unwrap();
    let seen = reg.get("zccache").unwrap().version;
    let start = Arc::new(Barrier::new(2));
    let daemon = {
        let (reg, start) = (reg.clone(), start.clone());
        std::thread::spawn(move || {
            start.wait();
            reg.register("zccache", 49152).unwrap();
        })
    };
    start.wait();
    let now = reg.wait("zccache", seen, Duration::from_secs(30)).unwrap();
    assert_eq!(now.state, State::Bound(49152));
    assert!(now.version > seen);
    daemon.join().unwrap();
    let current = reg.get("zccache").unwrap().version;
    let t0 = std::time::Instant::now();
    assert_eq!(reg.wait("zccache", current, Duration::from_millis(20)), Err(Error::TimedOut));
    assert!(t0.elapsed() >= Duration::from_millis(20));
}

#[test]
fn the_eventfd_becomes_readable_after_a_change() {
    let reg = Registry::new().unwrap();
    let fd = reg.eventfd().unwrap();
    let mut file = std::fs::File::from(fd.try_clone_to_owned().unwrap());
    let mut buf = [0u8; 8];
    assert_eq!(file.read(&mut buf).unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
    let before = reg.changes();
    reg.register("a", 1).unwrap();
    assert_eq!(file.read(&mut buf).unwrap(), 8);
    assert!(u64::from_ne_bytes(buf) >= 1);
    assert_eq!(reg.changes(), before + 1);
}

#[test]
fn stats_count_backends_and_changes() {
    let mut reg =
        Registry::with_options(&Options::new().initial_capacity(256).no_reclaim_thread(true))
            .unwrap();
    for i in 0..50 {
        reg.register(format!("b{i}"), 1000 + i).unwrap();
    }
    reg.untrack("b0").unwrap();
    reg.reclaim().unwrap();
    let stats = reg.stats().unwrap();
    assert_eq!(stats.tracked, 49);
    assert_eq!(stats.changes, 51);
    assert!(stats.table_capacity >= 256);
    assert!(stats.slots >= 49);
    assert!(stats.bytes > 0);
    assert_eq!(stats.deferred_bytes, 0);
}

#[test]
fn max_ids_refuses_new_ids_but_known_ids_still_change() {
    let reg = Registry::with_options(&Options::new().max_ids(2)).unwrap();
    reg.track("a").unwrap();
    reg.track("b").unwrap();
    assert_eq!(reg.track("c"), Err(Error::Full));
    assert_eq!(reg.register("c", 1), Err(Error::Full));
    assert_eq!(reg.get("c").unwrap(), Versioned::UNTRACKED);
    reg.register("a", 1).unwrap();
    assert_eq!(reg.lookup("a"), Some(1));
}

#[test]
fn every_error_has_its_code_name_and_message() {
    let all = [
        Error::Invalid,
        Error::NoMem,
        Error::Decode,
        Error::Range,
        Error::Conflict,
        Error::TimedOut,
        Error::Version,
        Error::TooLarge,
        Error::Truncated,
        Error::System(9),
        Error::Full,
    ];
    let mut names = BTreeSet::new();
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e.code(), -(i as i32) - 1);
        if !matches!(e, Error::System(_)) {
            assert_eq!(Error::from_code(e.code()), *e);
        }
        assert!(e.name().starts_with("PORTREG_E"), "{}", e.name());
        assert!(names.insert(e.name()), "duplicate name {}", e.name());
        let boxed: Box<dyn std::error::Error> = Box::new(*e);
        assert!(!boxed.to_string().is_empty());
    }
    assert!(Error::System(9).to_string().contains("Bad file descriptor"));
    assert_eq!(Error::Unknown(-99).name(), "PORTREG_UNKNOWN");
}

/// Eight threads share one Arc<Registry>: two writers cycle one backend
/// through known ports, four readers check that every lookup is one of
/// those ports and that versions never go backwards, two more writers each
/// register their own backends. Afterwards every private backend holds its
/// last port.
#[test]
fn many_threads_share_one_registry() {
    const ROUNDS: u16 = 20_000;
    let reg = Arc::new(Registry::new().unwrap());
    reg.track("shared").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(8));
    let mut threads = Vec::new();
    for w in 0..2u16 {
        let (reg, start) = (reg.clone(), start.clone());
        threads.push(std::thread::spawn(move || {
            start.wait();
            for i in 0..ROUNDS {
                // Ports 1000..1099 only.
                reg.register("shared", 1000 + (i + w) % 100).unwrap();
                if i % 7 == 0 {
                    reg.unbind("shared").unwrap();
                }
            }
        }));
    }
    for _ in 0..4 {
        let (reg, start, stop) = (reg.clone(), start.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            start.wait();
            let mut last_version = 0;
            let mut lookups = 0u64;
            while !stop.load(Ordering::Relaxed) || lookups < 1000 {
                if let Some(port) = reg.lookup("shared") {
                    assert!((1000..1100).contains(&port), "torn port {port}");
                }
                let v = reg.get("shared").unwrap();
                assert!(v.version >= last_version, "version went back");
                assert!(v.state.is_tracked());
                last_version = v.version;
                lookups += 1;
            }
        }));
    }
    for t in 0..2u16 {
        let (reg, start) = (reg.clone(), start.clone());
        threads.push(std::thread::spawn(move || {
            start.wait();
            for i in 0..500u16 {
                let id = format!("private-{t}-{}", i % 50);
                reg.register(&id, i + 1).unwrap();
                assert_eq!(reg.lookup(&id), Some(i + 1));
            }
        }));
    }
    let mut handles = threads.into_iter();
    // Join the writers (shared, then private), then stop the readers.
    let writers: Vec<_> = handles.by_ref().take(2).collect();
    let readers: Vec<_> = handles.by_ref().take(4).collect();
    for t in writers.into_iter().chain(handles) {
        t.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.join().unwrap();
    }
    assert_eq!(reg.count(), 1 + 2 * 50);
    for t in 0..2 {
        for k in 0..50u16 {
            assert_eq!(reg.lookup(format!("private-{t}-{k}")), Some(450 + k + 1));
        }
    }
}

/// While another thread grows and compacts the table, every walk still
/// returns each backend tracked throughout exactly once, with its bytes
/// intact.
#[test]
fn iteration_under_growth_and_compaction_keeps_its_guarantees() {
    let reg = Registry::with_options(&Options::new().initial_capacity(8)).unwrap();
    let stable: BTreeSet<Vec<u8>> = (0..100).map(|i| format!("stable-{i}").into_bytes()).collect();
    for id in &stable {
        reg.register(id, 1).unwrap();
    }
    let stop = AtomicBool::new(false);
    let rounds = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for i in 0..200 {
                    reg.track(format!("churn-{round}-{i}")).unwrap();
                }
                for i in 0..200 {
                    reg.untrack(format!("churn-{round}-{i}")).unwrap();
                }
                round += 1;
                rounds.store(round, Ordering::Relaxed);
            }
        });
        let mut walks = 0;
        while walks < 50 || rounds.load(Ordering::Relaxed) < 5 {
            walks += 1;
            let mut seen = BTreeSet::new();
            let walk = reg.iter();
            for entry in &walk {
                assert!(seen.insert(entry.id.to_vec()), "{:?} returned twice", entry.id);
                if entry.id.starts_with(b"stable-") {
                    assert_eq!(entry.state.state, State::Bound(1));
                } else {
                    assert!(entry.id.starts_with(b"churn-"), "garbage id {:?}", entry.id);
                }
            }
            drop(walk);
            assert!(stable.is_subset(&seen), "a stable backend was missed");
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(reg.stats().unwrap().compactions > 0);
}

/// The last `Arc` may be dropped on one thread while the others that used
/// the registry are exiting: the C library lets their exit (which hands
/// each thread's epoch record back) overlap the destroy. Under valgrind
/// (run-tests.sh) a hand-back into a freed registry is an invalid write.
#[test]
fn last_reference_dropped_while_other_threads_exit() {
    for _ in 0..50 {
        let reg = Arc::new(Registry::new().unwrap());
        reg.register("svc", 8080).unwrap();
        let go = Arc::new(Barrier::new(9));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let reg = Arc::clone(&reg);
                let go = Arc::clone(&go);
                std::thread::spawn(move || {
                    let port = reg.lookup("svc");
                    drop(reg);
                    go.wait();
                    port // the thread exits right after the barrier
                })
            })
            .collect();
        go.wait();
        drop(reg); // the last reference: destroy, beside the exits
        for t in threads {
            assert_eq!(t.join().unwrap(), Some(8080));
        }
    }
}

#[test]
fn ids_of_no_or_too_many_bytes_are_refused_by_every_method_without_panic() {
    let reg = Registry::new().unwrap();
    let body = portreg::encode_ready(8002);
    let forever = Duration::from_secs(3600);
    for id in [vec![], vec![b'x'; 256], vec![0u8; 70_000], "é".repeat(1 << 19).into_bytes()] {
        let n = id.len();
        assert_eq!(reg.track(&id), Err(Error::Invalid), "{n} bytes");
        assert_eq!(reg.register(&id, 1), Err(Error::Invalid), "{n} bytes");
        assert_eq!(reg.register_if(&id, 1, 0), Err(Error::Invalid), "{n} bytes");
        assert_eq!(reg.unbind(&id), Err(Error::Invalid), "{n} bytes");
        assert_eq!(reg.untrack(&id), Err(Error::Invalid), "{n} bytes");
        assert_eq!(reg.untrack_if(&id, 0), Err(Error::Invalid), "{n} bytes");
        assert_eq!(reg.decode_and_register(&id, &body), Err(Error::Invalid), "{n} bytes");
        assert_eq!(reg.lookup(&id), None, "{n} bytes");
        assert_eq!(reg.get(&id), Err(Error::Invalid), "{n} bytes");
        assert_eq!(reg.wait(&id, 0, forever), Err(Error::Invalid), "{n} bytes");
        assert_eq!(reg.wait_forever(&id, 0), Err(Error::Invalid), "{n} bytes");
        assert_eq!(reg.handle(&id).unwrap_err(), Error::Invalid, "{n} bytes");
    }
    let stats = reg.stats().unwrap();
    assert_eq!((stats.tracked, stats.slots, stats.changes), (0, 0, 0));
}
