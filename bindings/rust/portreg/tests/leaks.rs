//! Forgetting what a registry lent (`std::mem::forget` is safe Rust) leaks
//! the registry: it never aborts the process, and the C registry is never
//! destroyed under a handle still open or an iteration still in progress.
//!
//! Each case runs in a child process, this same test binary running one
//! ignored test: an abort then fails that case alone, with the child's
//! output in the message, and the memory each case leaks on purpose stays
//! out of the parent, which the memcheck pass of `run-tests.sh` runs under
//! valgrind (valgrind does not follow children).
//!
//! Whether the registry still exists after the last `Registry` is dropped
//! shows in its eventfd: `portreg_destroy` closes it, so a descriptor that
//! is still an eventfd means destroy did not run.
use std::mem::forget;
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};
use std::sync::Arc;

use portreg::{FrameReader, Options, Registry};

/// Set in the child processes.
const CHILD: &str = "PORTREG_TEST_LEAK_CHILD";

/// Runs the ignored test `name` alone in a child process.
fn run_child(name: &str) -> Output {
    Command::new(std::env::current_exe().expect("the test binary's path"))
        .args(["--exact", name, "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("spawning the test binary")
}

/// The child ran `name` to its end (it prints the marker last) and exited 0.
fn assert_child_went_on(name: &str) {
    let out = run_child(name);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains(&went_on(name)),
        "{name} in a child process: {}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
}

fn went_on(name: &str) -> String {
    format!("{name}: the process went on")
}

/// Whether `fd` is an open eventfd of this process.
fn is_eventfd(fd: i32) -> bool {
    std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|target| target.to_string_lossy().contains("eventfd"))
        .unwrap_or(false)
}

/// Some use of a fresh registry, after a leak.
fn use_another_registry() {
    let reg = Registry::new().unwrap();
    reg.register("after", 8002).unwrap();
    let h = reg.handle("after").unwrap();
    assert_eq!(h.lookup(), Some(8002));
    assert_eq!((&reg.iter()).into_iter().count(), 1);
}

#[test]
fn a_forgotten_handle_leaks_the_registry_instead_of_aborting() {
    assert_child_went_on("forget_a_handle_then_drop_the_registry");
}

#[test]
#[ignore = "a child process of a_forgotten_handle_leaks_the_registry_instead_of_aborting"]
fn forget_a_handle_then_drop_the_registry() {
    let reg = Registry::new().unwrap();
    reg.register("x", 8002).unwrap();
    let fd = reg.eventfd().unwrap().as_raw_fd();
    forget(reg.handle("x").unwrap());
    drop(reg);
    assert!(is_eventfd(fd), "the registry was destroyed with a handle open");
    use_another_registry();
    println!("{}", went_on("forget_a_handle_then_drop_the_registry"));
}

#[test]
fn a_handle_forgotten_on_one_thread_survives_the_last_arc_on_another() {
    assert_child_went_on("forget_a_handle_on_a_thread_then_drop_the_last_arc_elsewhere");
}

#[test]
#[ignore = "a child process of a_handle_forgotten_on_one_thread_survives_the_last_arc_on_another"]
fn forget_a_handle_on_a_thread_then_drop_the_last_arc_elsewhere() {
    let reg = Arc::new(Registry::new().unwrap());
    let fd = reg.eventfd().unwrap().as_raw_fd();
    let forgetter = {
        let reg = Arc::clone(&reg);
        std::thread::spawn(move || {
            for i in 0..100 {
                forget(reg.handle(format!("backend-{i}")).unwrap());
            }
        })
    };
    forgetter.join().unwrap();
    // The ids stay held (their slots pinned) but every other call works.
    reg.register("backend-7", 7).unwrap();
    assert_eq!(reg.lookup("backend-7"), Some(7));
    assert_eq!(reg.stats().unwrap().slots, 100);
    let last = std::thread::spawn(move || drop(reg));
    last.join().unwrap();
    assert!(is_eventfd(fd), "the registry was destroyed with handles open");
    use_another_registry();
    println!("{}", went_on("forget_a_handle_on_a_thread_then_drop_the_last_arc_elsewhere"));
}

#[test]
fn a_forgotten_iteration_keeps_the_registry_from_being_destroyed() {
    assert_child_went_on("forget_an_iteration_then_drop_the_registry");
}

#[test]
#[ignore = "a child process of a_forgotten_iteration_keeps_the_registry_from_being_destroyed"]
fn forget_an_iteration_then_drop_the_registry() {
    let reg = Registry::new().unwrap();
    reg.track("a").unwrap();
    reg.track("b").unwrap();
    let fd = reg.eventfd().unwrap().as_raw_fd();
    let walk = reg.iter();
    assert!(walk.next_entry().is_some());
    forget(walk);
    drop(reg);
    assert!(is_eventfd(fd), "the registry was destroyed during an iteration");
    use_another_registry();
    println!("{}", went_on("forget_an_iteration_then_drop_the_registry"));
}

#[test]
fn forgetting_everything_a_registry_lends_leaks_and_nothing_else() {
    assert_child_went_on("forget_one_of_each_then_drop_the_registry_many_times");
}

#[test]
#[ignore = "a child process of forgetting_everything_a_registry_lends_leaks_and_nothing_else"]
fn forget_one_of_each_then_drop_the_registry_many_times() {
    let mut fds = Vec::new();
    for round in 0..50 {
        let reg =
            Registry::with_options(&Options::new().no_reclaim_thread(round % 2 == 0)).unwrap();
        reg.register("x", 8002).unwrap();
        fds.push(reg.eventfd().unwrap().as_raw_fd());
        forget(reg.handle("x").unwrap());
        forget(reg.handle("never-tracked").unwrap());
        forget(reg.iter());
        let mut reader = FrameReader::new();
        let mut input: &[u8] = &[1, 9, 0];
        assert_eq!(reader.next_frame(&mut input), Ok(None));
        forget(reader);
        // Churn under the open iteration: deferred memory piles up.
        for i in 0..200 {
            reg.track(format!("churn-{i}")).unwrap();
            reg.untrack(format!("churn-{i}")).unwrap();
        }
        drop(reg);
    }
    assert!(fds.iter().all(|&fd| is_eventfd(fd)), "a registry was destroyed with a loan open");
    use_another_registry();
    println!("{}", went_on("forget_one_of_each_then_drop_the_registry_many_times"));
}

#[test]
fn a_forgotten_iteration_holds_back_reclamation_only_until_its_thread_exits() {
    assert_child_went_on("forget_an_iteration_on_a_thread_that_exits");
}

#[test]
#[ignore = "a child process of a_forgotten_iteration_holds_back_reclamation_only_until_its_thread_exits"]
fn forget_an_iteration_on_a_thread_that_exits() {
    let mut reg = Registry::with_options(&Options::new().no_reclaim_thread(true)).unwrap();
    // On the thread that forgot it, reclaim refuses (it would wait for
    // itself); the thread's exit ends the iteration's epoch section.
    forget(reg.iter());
    assert_eq!(reg.reclaim(), Err(portreg::Error::Invalid));
    std::thread::scope(|s| {
        s.spawn(|| forget(reg.iter()));
    });
    let reg = std::thread::spawn(move || {
        reg.track("a").unwrap();
        reg.untrack("a").unwrap();
        reg.reclaim().unwrap();
        reg
    })
    .join()
    .unwrap();
    assert_eq!(reg.stats().unwrap().deferred_bytes, 0);
    println!("{}", went_on("forget_an_iteration_on_a_thread_that_exits"));
}

/// Set by `run-tests.sh`, which builds the library with assertions kept:
/// there the control case below must abort.
const ASSERTIONS: &str = "PORTREG_TEST_ASSERTIONS";

#[test]
fn the_c_library_under_test_aborts_on_a_handle_left_open_at_destroy() {
    let out = run_child("destroy_with_a_c_handle_open");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let aborted = out.status.signal() == Some(6);
    if std::env::var_os(ASSERTIONS).is_some() {
        assert!(
            aborted,
            "{ASSERTIONS} is set but the library did not abort: {}\n{stderr}",
            out.status
        );
    }
    if aborted {
        assert!(stderr.contains("portreg_destroy: a handle is still open"), "{stderr}");
    } else {
        // NDEBUG build: destroy frees the slot and the handle dangles.
        assert!(out.status.success(), "{}\n{stderr}", out.status);
        eprintln!("note: libportreg was built with NDEBUG: the cases above check the eventfd only");
    }
}

/// What the safe crate did before each loan kept the registry alive: open
/// a handle, then destroy the registry.
#[test]
#[ignore = "a child process of the_c_library_under_test_aborts_on_a_handle_left_open_at_destroy"]
fn destroy_with_a_c_handle_open() {
    use portreg_sys as sys;
    if std::env::var_os(CHILD).is_none() {
        eprintln!(
            "destroy_with_a_c_handle_open aborts where assertions are kept: child process only"
        );
        return;
    }
    // SAFETY: a registry with default options (NULL), checked non-NULL.
    let reg = unsafe { sys::portreg_create(std::ptr::null()) };
    assert!(!reg.is_null());
    let mut h: *mut sys::portreg_handle_t = std::ptr::null_mut();
    // SAFETY: a live registry, a 1-byte id, a valid out-pointer.
    assert_eq!(unsafe { sys::portreg_handle_open(reg, b"x".as_ptr().cast(), 1, &mut h) }, 0);
    // SAFETY: reg is live and nothing else uses it; the handle is never used
    // again (this is the misuse the control case shows).
    unsafe { sys::portreg_destroy(reg) };
}
