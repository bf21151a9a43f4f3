//! Every `String` is a backend id, as in the reference's
//! `HashMap<String, Option<u16>>`: random operations on ids of every shape
//! (empty, short, exactly 255 bytes, 256, 70,000, 1 MiB, with NUL bytes,
//! multibyte, ids equal to another's prefix) run on
//! `portreg::compat::HttpEndpointRegistry` and on such a map, compared after
//! every step. Deterministic (a fixed seed per run), std only.
use std::collections::HashMap;
use std::fmt;

use portreg::compat::{
    decode_and_register, BackendHttpReadyError, BackendId, HttpEndpointRegistry,
};

/// splitmix64: small, deterministic, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const MIB: usize = 1 << 20;

/// Ids around every edge: the C registry's 1..=255 bytes and beyond.
fn fixed_ids() -> Vec<String> {
    let x255 = "x".repeat(255);
    vec![
        String::new(),
        "zccache".to_string(),
        "a".to_string(),
        "\0".to_string(),
        "a\0b".to_string(),
        "a\0".to_string(),
        "é".to_string(),
        x255.clone(),
        format!("{x255}x"),              // 256 bytes, the 255-byte id plus one
        format!("{x255}y"),              // 256 bytes, differs in the last one
        "x".repeat(254),                 // a prefix of the 255-byte id
        "€".repeat(85),                  // 255 bytes in 3-byte chars
        "€".repeat(86),                  // 258 bytes
        format!("{}x", "é".repeat(127)), // 255 bytes
        "é".repeat(128),                 // 256 bytes
        "\0".repeat(256),                // NUL bytes only
        "\0".repeat(255),
        "x".repeat(70_000),
        format!("{}y", "x".repeat(69_999)), // 70,000 bytes, another last byte
        "x".repeat(70_001),
        "x".repeat(MIB),
        format!("{}\0", "x".repeat(MIB - 1)), // 1 MiB ending in NUL
        "😀".repeat(MIB / 4),                 // 1 MiB of 4-byte chars
    ]
}

/// A random id of a random length, mostly near the 255-byte edge.
fn random_id(rng: &mut Rng) -> String {
    const PIECES: [&str; 8] = ["a", "b", "\0", "é", "€", "😀", "-", "x"];
    let target = match rng.below(4) {
        0 => rng.below(8),
        1 => 250 + rng.below(12),
        2 => rng.below(600),
        _ => 60_000 + rng.below(20_000),
    };
    let mut id = String::with_capacity(target + 4);
    while id.len() < target.min(64) {
        id.push_str(PIECES[rng.below(PIECES.len())]);
    }
    // A long id repeats its random start, then ends in a random piece.
    if id.len() < target {
        let start = id.clone();
        while id.len() < target {
            id.push_str(&start);
        }
        id.push_str(PIECES[rng.below(PIECES.len())]);
    }
    id
}

/// What decoding a body gives, known from how the body was made.
#[derive(Clone, Copy, Debug)]
enum Body {
    Port(u32),
    Malformed(&'static [u8]),
}

impl Body {
    fn random(rng: &mut Rng) -> Body {
        const PORTS: [u32; 8] = [0, 1, 8002, 49152, 65535, 65536, 70_000, u32::MAX];
        const MALFORMED: [&[u8]; 3] = [&[0xFF; 8], &[0x08], &[0x08, 0x80]];
        match rng.below(10) {
            0 => Body::Malformed(MALFORMED[rng.below(MALFORMED.len())]),
            1..=3 => Body::Port(PORTS[rng.below(PORTS.len())]),
            _ => Body::Port(1 + rng.below(65535) as u32),
        }
    }

    fn bytes(self) -> Vec<u8> {
        match self {
            Body::Port(port) => portreg::encode_ready(port),
            Body::Malformed(bytes) => bytes.to_vec(),
        }
    }
}

/// The reference: a map from any `String`, with portreg's two documented
/// differences (port 0 is refused; the snapshot is sorted).
#[derive(Default)]
struct Model(HashMap<BackendId, Option<u16>>);

impl Model {
    fn track(&mut self, id: BackendId) {
        self.0.entry(id).or_insert(None);
    }

    fn register(&mut self, id: BackendId, port: u16) -> Option<u16> {
        if port == 0 {
            return None;
        }
        self.0.insert(id, Some(port)).flatten()
    }

    fn decode_and_register(&mut self, id: BackendId, body: Body) -> Result<u16, &'static str> {
        match body {
            Body::Malformed(_) => Err("decode"),
            Body::Port(value) => match u16::try_from(value) {
                Ok(port) if port != 0 => {
                    self.register(id, port);
                    Ok(port)
                }
                _ => Err("range"),
            },
        }
    }

    fn lookup(&self, id: &str) -> Option<u16> {
        self.0.get(id).copied().flatten()
    }

    fn state(&self, id: &str) -> Option<Option<u16>> {
        self.0.get(id).copied()
    }

    fn sorted(&self) -> Vec<(&BackendId, &Option<u16>)> {
        let mut v: Vec<_> = self.0.iter().collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v
    }
}

impl fmt::Debug for Model {
    /// As compat prints itself: the endpoints as a map, sorted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Map<'a>(Vec<(&'a BackendId, &'a Option<u16>)>);
        impl fmt::Debug for Map<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map().entries(self.0.iter().map(|(k, v)| (k, v))).finish()
            }
        }
        f.debug_struct("HttpEndpointRegistry").field("endpoints", &Map(self.sorted())).finish()
    }
}

fn outcome(r: Result<u16, BackendHttpReadyError>) -> Result<u16, &'static str> {
    match r {
        Ok(port) => Ok(port),
        Err(BackendHttpReadyError::Decode(_)) => Err("decode"),
        Err(BackendHttpReadyError::PortOutOfRange(_)) => Err("range"),
    }
}

/// Short names for failure messages (ids may be a megabyte).
fn name(id: &str) -> String {
    let head: String = id.chars().take(12).collect();
    format!("{head:?}… ({} bytes)", id.len())
}

/// The whole observable state is the model's: the snapshot (ids and
/// ports, in order), and state and lookup of `ids`.
fn assert_same(compat: &HttpEndpointRegistry, model: &Model, ids: &[&String], step: &str) {
    let snap = compat.snapshot();
    let expected = model.sorted();
    assert_eq!(snap.len(), expected.len(), "{step}: snapshot length");
    for ((id, port), (model_id, model_port)) in snap.iter().zip(&expected) {
        assert!(
            id == *model_id && port == *model_port,
            "{step}: snapshot has {} -> {port:?} where the model has {} -> {model_port:?}",
            name(id),
            name(model_id)
        );
    }
    for id in ids {
        assert_eq!(compat.state(id), model.state(id), "{step}: state of {}", name(id));
        assert_eq!(compat.lookup(id), model.lookup(id), "{step}: lookup of {}", name(id));
    }
}

/// A fresh registry built from a snapshot holds the same backends.
fn assert_round_trip(compat: &HttpEndpointRegistry, model: &Model) {
    let snap = compat.snapshot();
    let copy = HttpEndpointRegistry::default();
    for (id, port) in snap.iter().cloned() {
        match port {
            Some(port) => assert_eq!(copy.register_backend_http_endpoint(id, port), None),
            None => copy.track(id),
        }
    }
    assert!(copy.snapshot() == snap, "the snapshot's copy differs");
    let ids: Vec<&String> = model.0.keys().collect();
    assert_same(&copy, model, &ids, "round trip");
}

/// One run: `steps` random operations on ids drawn from `pool`.
fn run(seed: u64, pool: &[String], steps: usize) {
    let mut rng = Rng(seed);
    let compat = HttpEndpointRegistry::new();
    let mut model = Model::default();
    for step in 0..steps {
        let id = &pool[rng.below(pool.len())];
        let what = format!("seed {seed} step {step}");
        match rng.below(6) {
            0 => {
                compat.track(id.clone());
                model.track(id.clone());
            }
            1 | 2 => {
                let port = if rng.below(8) == 0 { 0 } else { 1 + rng.below(65535) as u16 };
                assert_eq!(
                    compat.register_backend_http_endpoint(id.clone(), port),
                    model.register(id.clone(), port),
                    "{what}: register {} {port}",
                    name(id)
                );
            }
            3 => {
                let body = Body::random(&mut rng);
                assert_eq!(
                    outcome(decode_and_register(&compat, id.clone(), &body.bytes())),
                    model.decode_and_register(id.clone(), body),
                    "{what}: decode_and_register {} {body:?}",
                    name(id)
                );
            }
            4 => assert_eq!(compat.lookup(id), model.lookup(id), "{what}: lookup {}", name(id)),
            _ => assert_eq!(compat.state(id), model.state(id), "{what}: state {}", name(id)),
        }
        assert_same(&compat, &model, &[id], &what);
    }
    let all: Vec<&String> = pool.iter().collect();
    assert_same(&compat, &model, &all, &format!("seed {seed}, end"));
    assert_round_trip(&compat, &model);
}

#[test]
fn compat_behaves_as_a_hashmap_for_ids_of_every_shape() {
    let fixed = fixed_ids();
    // Each run draws from a few fixed ids (at most one of a megabyte, so
    // that the per-step snapshot stays cheap) and a few random ones.
    for seed in 1..=16u64 {
        let mut rng = Rng(seed.wrapping_mul(0xA076_1D64_78BD_642F));
        let huge: Vec<&String> = fixed.iter().filter(|id| id.len() >= MIB).collect();
        let mut pool: Vec<String> = fixed.iter().filter(|id| id.len() < MIB).cloned().collect();
        pool.push(huge[rng.below(huge.len())].clone());
        for _ in 0..6 {
            pool.push(random_id(&mut rng));
        }
        run(seed, &pool, 120);
    }
}

#[test]
fn every_fixed_id_goes_through_every_operation() {
    let compat = HttpEndpointRegistry::new();
    let mut model = Model::default();
    let ids = fixed_ids();
    let all: Vec<&String> = ids.iter().collect();
    for (i, id) in ids.iter().enumerate() {
        let port = 1000 + i as u16;
        assert_eq!(compat.state(id), None, "{}", name(id));
        compat.track(id.clone());
        model.track(id.clone());
        assert_eq!(compat.state(id), Some(None), "{}", name(id));
        assert_eq!(compat.register_backend_http_endpoint(id.clone(), port), None);
        model.register(id.clone(), port);
        assert_eq!(compat.register_backend_http_endpoint(id.clone(), 0), None);
        let body = portreg::encode_ready(u32::from(port) + 1);
        assert_eq!(decode_and_register(&compat, id.clone(), &body), Ok(port + 1));
        model.register(id.clone(), port + 1);
        assert_eq!(
            decode_and_register(&compat, id.clone(), &portreg::encode_ready(70_000)),
            Err(BackendHttpReadyError::PortOutOfRange(70_000))
        );
        assert_eq!(compat.lookup(id), Some(port + 1), "{}", name(id));
        assert_same(&compat, &model, &all, &format!("after {}", name(id)));
    }
    assert_eq!(format!("{compat:?}"), format!("{model:?}"));
    assert_round_trip(&compat, &model);
}

#[test]
fn unusual_ids_are_shared_between_threads() {
    let registry = std::sync::Arc::new(HttpEndpointRegistry::default());
    let long = "y".repeat(300);
    let writers: Vec<_> = (0..4u16)
        .map(|t| {
            let (registry, long) = (registry.clone(), long.clone());
            std::thread::spawn(move || {
                for i in 1..=200u16 {
                    let mine = format!("{long}{t}");
                    registry.register_backend_http_endpoint(mine.clone(), i);
                    registry.register_backend_http_endpoint(format!("t{t}"), i);
                    registry.register_backend_http_endpoint(String::new(), i);
                    assert_eq!(registry.lookup(&mine), Some(i));
                    assert!(registry.lookup("").is_some());
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let snapshot = registry.snapshot();
    assert_eq!(snapshot.len(), 9);
    assert_eq!(snapshot[0], (String::new(), Some(200)));
    assert!(snapshot.iter().all(|(_, port)| *port == Some(200)));
}
