//! Every function the header declares is declared in portreg-sys (the
//! list below names each one, so a missing declaration does not compile)
//! and exported by the linked library (taking each address makes the
//! linker resolve it).
use std::collections::BTreeSet;

macro_rules! functions {
    ($($f:ident),* $(,)?) => {
        [$((stringify!($f), portreg_sys::$f as *const ())),*]
    };
}

#[test]
fn every_function_of_the_header_is_declared_and_linked() {
    let rust = functions![
        portreg_version,
        portreg_version_string,
        portreg_strerror,
        portreg_err_name,
        portreg_options_init,
        portreg_create,
        portreg_destroy,
        portreg_thread_attach,
        portreg_track,
        portreg_register,
        portreg_lookup,
        portreg_lookup_many,
        portreg_get,
        portreg_untrack,
        portreg_unbind,
        portreg_register_if,
        portreg_untrack_if,
        portreg_count,
        portreg_decode_and_register,
        portreg_decode_port,
        portreg_decode_ready,
        portreg_encode_ready,
        portreg_iter_init,
        portreg_iter_next,
        portreg_iter_fini,
        portreg_snapshot,
        portreg_snapshot_free,
        portreg_wait,
        portreg_changes,
        portreg_eventfd,
        portreg_stats,
        portreg_reclaim,
        portreg_handle_open,
        portreg_handle_lookup,
        portreg_handle_get,
        portreg_handle_wait,
        portreg_handle_id,
        portreg_handle_close,
        portreg_last_errno,
        portreg_frame_reader_init,
        portreg_frame_feed,
        portreg_frame_finish,
        portreg_frame_reader_fini,
    ];
    assert!(rust.iter().all(|(_, addr)| !addr.is_null()));
    let rust: BTreeSet<&str> = rust.iter().map(|(name, _)| *name).collect();

    // The header's declarations: lines "PORTREG_API <type> <name>(...".
    let header =
        std::fs::read_to_string(concat!(env!("PORTREG_SYS_INCLUDE_DIR"), "/portreg.h")).unwrap();
    let c: BTreeSet<&str> = header
        .lines()
        .filter_map(|line| line.strip_prefix("PORTREG_API "))
        .map(|decl| {
            let before = &decl[..decl.find('(').expect("a function declaration")];
            before.rsplit([' ', '*']).next().unwrap()
        })
        .collect();
    assert_eq!(c.len(), 43, "the header declares {} functions: {c:?}", c.len());
    assert_eq!(rust, c, "portreg-sys and the header declare different functions");
}
