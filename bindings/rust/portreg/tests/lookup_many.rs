//! `Registry::lookup_many`: per id, what `Registry::lookup` answers.
use portreg::{Error, Registry};

#[test]
fn lookup_many_answers_every_id_as_lookup_does() {
    let reg = Registry::new().unwrap();
    let ids: Vec<String> = (0..300).map(|i| format!("backend-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        match i % 3 {
            0 => {}
            1 => reg.track(id).unwrap(),
            _ => {
                reg.register(id, 1000 + i as u16).unwrap();
            }
        }
    }
    // Chunks of 64 on the Rust side, groups inside the library: 300 ids
    // cross both edges; an invalid id (empty) reads as unbound.
    let mut req: Vec<&[u8]> = ids.iter().map(|s| s.as_bytes()).collect();
    req.push(b"");
    let mut ports = vec![7u16; req.len() + 1];
    let bound = reg.lookup_many(&req, &mut ports).unwrap();
    assert_eq!(bound, 100);
    for (i, id) in req.iter().enumerate() {
        assert_eq!(ports[i], reg.lookup(id).unwrap_or(0), "id {i}");
    }
    assert_eq!(ports[req.len()], 7, "wrote past the ids");
}

#[test]
fn lookup_many_refuses_a_short_ports_slice_and_writes_nothing() {
    let reg = Registry::new().unwrap();
    reg.register("a", 80).unwrap();
    let mut ports = [9u16; 1];
    assert_eq!(reg.lookup_many(&["a", "b"], &mut ports), Err(Error::Invalid));
    assert_eq!(ports, [9]);
    let none: [&str; 0] = [];
    assert_eq!(reg.lookup_many(&none, &mut []), Ok(0));
}
