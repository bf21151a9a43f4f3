//! Handles: they follow their id through every state, survive compaction,
//! are shared between threads, and are counted while open.
use std::sync::Barrier;

use portreg::{Options, Registry, State, Versioned};

#[test]
fn a_handle_follows_its_id_through_every_state() {
    let reg = Registry::new().unwrap();
    let h = reg.handle("zccache").unwrap();
    assert_eq!(h.id(), b"zccache");
    assert_eq!(h.get().unwrap(), Versioned::UNTRACKED);
    assert_eq!(reg.count(), 0, "an open handle does not track its id");
    reg.track("zccache").unwrap();
    assert_eq!(h.get().unwrap(), reg.get("zccache").unwrap());
    reg.register("zccache", 49152).unwrap();
    assert_eq!(h.lookup(), Some(49152));
    reg.unbind("zccache").unwrap();
    assert_eq!(h.get().unwrap().state, State::Pending);
    reg.untrack("zccache").unwrap();
    assert_eq!(h.lookup(), None);
    reg.register("zccache", 2).unwrap();
    assert_eq!(h.lookup(), Some(2));
    assert_eq!(h.get().unwrap(), reg.get("zccache").unwrap());
}

#[test]
fn handles_on_one_id_share_its_slot_and_bad_ids_are_refused() {
    let reg = Registry::new().unwrap();
    assert_eq!(reg.handle("").unwrap_err(), portreg::Error::Invalid);
    assert_eq!(reg.handle(vec![b'x'; portreg::ID_MAX + 1]).unwrap_err(), portreg::Error::Invalid);
    let a = reg.handle("a").unwrap();
    let b = reg.handle("a").unwrap();
    assert_eq!(reg.stats().unwrap().slots, 1);
    assert_eq!(reg.count(), 0);
    reg.register("a", 3).unwrap();
    drop(a);
    assert_eq!(b.lookup(), Some(3));
    assert_eq!(b.id(), b"a");
}

#[test]
fn a_handle_counts_against_max_ids() {
    let reg = Registry::with_options(&Options::new().max_ids(1)).unwrap();
    let h = reg.handle("held").unwrap();
    assert_eq!(reg.track("other"), Err(portreg::Error::Full));
    assert_eq!(reg.handle("other").unwrap_err(), portreg::Error::Full);
    reg.track("held").unwrap();
    assert_eq!(h.get().unwrap().state, State::Pending);
}

#[test]
fn a_handle_survives_compaction_and_growth() {
    let reg = Registry::with_options(&Options::new().initial_capacity(8)).unwrap();
    let h = reg.handle("kept").unwrap();
    reg.register("kept", 7).unwrap();
    for round in 0..4 {
        for i in 0..500 {
            reg.track(format!("churn-{round}-{i}")).unwrap();
        }
        for i in 0..500 {
            reg.untrack(format!("churn-{round}-{i}")).unwrap();
        }
    }
    assert!(reg.stats().unwrap().compactions > 0, "the churn should have compacted");
    assert_eq!(h.lookup(), Some(7));
    reg.register("kept", 8).unwrap();
    assert_eq!(h.lookup(), Some(8));
}

#[test]
fn one_handle_is_shared_by_many_threads() {
    let reg = Registry::new().unwrap();
    let h = reg.handle("shared").unwrap();
    let start = Barrier::new(5);
    std::thread::scope(|s| {
        s.spawn(|| {
            start.wait();
            for i in 1..=2000u16 {
                reg.register("shared", i).unwrap();
            }
        });
        for _ in 0..4 {
            s.spawn(|| {
                start.wait();
                let mut last = 0;
                for _ in 0..20_000 {
                    let v = h.get().unwrap();
                    assert!(v.version >= last);
                    last = v.version;
                    if let State::Bound(port) = v.state {
                        assert!((1..=2000).contains(&port));
                    }
                }
            });
        }
    });
    assert_eq!(h.lookup(), Some(2000));
}

#[test]
fn a_handle_wait_wakes_on_register() {
    let reg = Registry::new().unwrap();
    let h = reg.handle("zccache").unwrap();
    let got = std::thread::scope(|s| {
        let waiter = s.spawn(|| h.wait(0, std::time::Duration::from_secs(30)));
        reg.register("zccache", 5).unwrap();
        waiter.join().unwrap()
    });
    assert_eq!(got.unwrap().state, State::Bound(5));
}
