//! Every size, alignment, field offset and constant of portreg-sys against
//! the C header: a small C program compiled with `cc` prints the header's
//! values, and each one is compared with what Rust computes.
use std::collections::BTreeMap;
use std::mem::{align_of, offset_of, size_of};
use std::process::Command;

use portreg_sys::*;

const C_PROGRAM: &str = r#"
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <portreg.h>

#define SIZE(t) printf("size %s %zu\nalign %s %zu\n", #t, sizeof(t), #t, alignof(t))
#define OFF(t, f) printf("offset %s.%s %zu\n", #t, #f, offsetof(t, f))
#define FIELD(t, f) printf("fieldsize %s.%s %zu\n", #t, #f, sizeof(((t *)0)->f)); OFF(t, f)
#define CONST(c) printf("const %s %lld\n", #c, (long long)(c))

int main(void)
{
    SIZE(portreg_status_t);
    SIZE(portreg_state_t);
    FIELD(portreg_state_t, status);
    FIELD(portreg_state_t, port);
    FIELD(portreg_state_t, version);
    SIZE(portreg_id_t);
    FIELD(portreg_id_t, id);
    FIELD(portreg_id_t, id_len);
    SIZE(portreg_alloc_fn);
    SIZE(portreg_free_fn);
    SIZE(portreg_options_t);
    FIELD(portreg_options_t, initial_capacity);
    FIELD(portreg_options_t, hash_seed);
    FIELD(portreg_options_t, alloc);
    FIELD(portreg_options_t, free);
    FIELD(portreg_options_t, alloc_ctx);
    FIELD(portreg_options_t, no_membarrier);
    FIELD(portreg_options_t, max_ids);
    FIELD(portreg_options_t, no_reclaim_thread);
    FIELD(portreg_options_t, reserved);
    SIZE(portreg_entry_t);
    FIELD(portreg_entry_t, id);
    FIELD(portreg_entry_t, id_len);
    FIELD(portreg_entry_t, state);
    SIZE(portreg_iter_t);
    FIELD(portreg_iter_t, opaque);
    SIZE(portreg_snapshot_t);
    FIELD(portreg_snapshot_t, count);
    FIELD(portreg_snapshot_t, entries);
    SIZE(portreg_stats_t);
    FIELD(portreg_stats_t, tracked);
    FIELD(portreg_stats_t, slots);
    FIELD(portreg_stats_t, table_capacity);
    FIELD(portreg_stats_t, bytes);
    FIELD(portreg_stats_t, compactions);
    FIELD(portreg_stats_t, changes);
    FIELD(portreg_stats_t, probe_max);
    FIELD(portreg_stats_t, reseeds);
    FIELD(portreg_stats_t, deferred_bytes);
    FIELD(portreg_stats_t, reserved);
    SIZE(portreg_frame_reader_t);
    FIELD(portreg_frame_reader_t, opaque);
    SIZE(bool);
    CONST(PORTREG_VERSION_MAJOR);
    CONST(PORTREG_VERSION_MINOR);
    CONST(PORTREG_VERSION_PATCH);
    CONST(PORTREG_VERSION_HEX);
    CONST(PORTREG_ID_MAX);
    CONST(PORTREG_OK);
    CONST(PORTREG_EINVAL);
    CONST(PORTREG_ENOMEM);
    CONST(PORTREG_EDECODE);
    CONST(PORTREG_ERANGE);
    CONST(PORTREG_ECONFLICT);
    CONST(PORTREG_ETIMEDOUT);
    CONST(PORTREG_EVERSION);
    CONST(PORTREG_ETOOLARGE);
    CONST(PORTREG_ETRUNCATED);
    CONST(PORTREG_ESYSTEM);
    CONST(PORTREG_EFULL);
    CONST(PORTREG_UNTRACKED);
    CONST(PORTREG_PENDING);
    CONST(PORTREG_BOUND);
    CONST(PORTREG_READY_MAX_SIZE);
    CONST(PORTREG_FRAME_VERSION);
    CONST(PORTREG_FRAME_HEADER_SIZE);
    CONST(PORTREG_FRAME_MAX_BODY);
    return 0;
}
"#;

/// Runs the C program and returns its "kind name value" lines as a map
/// from "kind name" to value.
fn c_values() -> BTreeMap<String, i64> {
    let dir = std::env::temp_dir().join(format!("portreg-sys-layout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("layout.c");
    let exe = dir.join("layout");
    std::fs::write(&src, C_PROGRAM).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(&cc)
        .arg("-std=c11")
        .arg("-I")
        .arg(env!("PORTREG_SYS_INCLUDE_DIR"))
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    assert!(status.success(), "the layout program did not compile");
    let out = Command::new(&exe).output().unwrap();
    assert!(out.status.success());
    std::fs::remove_dir_all(&dir).ok();
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .map(|line| {
            let (key, value) = line.rsplit_once(' ').unwrap();
            (key.to_string(), value.parse().unwrap())
        })
        .collect()
}

fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

#[test]
fn every_size_alignment_offset_and_constant_matches_the_header() {
    let mut c = c_values();
    let mut rust: BTreeMap<String, i64> = BTreeMap::new();
    macro_rules! size {
        ($t:ty) => {
            rust.insert(format!("size {}", stringify!($t)), size_of::<$t>() as i64);
            rust.insert(format!("align {}", stringify!($t)), align_of::<$t>() as i64);
        };
    }
    macro_rules! field {
        ($t:ident, $f:ident) => {
            rust.insert(
                format!("offset {}.{}", stringify!($t), stringify!($f)),
                offset_of!($t, $f) as i64,
            );
            rust.insert(
                format!("fieldsize {}.{}", stringify!($t), stringify!($f)),
                field_size(|x: &$t| &x.$f) as i64,
            );
        };
    }
    macro_rules! constant {
        ($c:ident) => {
            rust.insert(format!("const {}", stringify!($c)), $c as i64);
        };
    }
    size!(portreg_status_t);
    size!(portreg_state_t);
    field!(portreg_state_t, status);
    field!(portreg_state_t, port);
    field!(portreg_state_t, version);
    size!(portreg_id_t);
    field!(portreg_id_t, id);
    field!(portreg_id_t, id_len);
    size!(portreg_alloc_fn);
    size!(portreg_free_fn);
    size!(portreg_options_t);
    field!(portreg_options_t, initial_capacity);
    field!(portreg_options_t, hash_seed);
    field!(portreg_options_t, alloc);
    field!(portreg_options_t, free);
    field!(portreg_options_t, alloc_ctx);
    field!(portreg_options_t, no_membarrier);
    field!(portreg_options_t, max_ids);
    field!(portreg_options_t, no_reclaim_thread);
    field!(portreg_options_t, reserved);
    size!(portreg_entry_t);
    field!(portreg_entry_t, id);
    field!(portreg_entry_t, id_len);
    field!(portreg_entry_t, state);
    size!(portreg_iter_t);
    field!(portreg_iter_t, opaque);
    size!(portreg_snapshot_t);
    field!(portreg_snapshot_t, count);
    field!(portreg_snapshot_t, entries);
    size!(portreg_stats_t);
    field!(portreg_stats_t, tracked);
    field!(portreg_stats_t, slots);
    field!(portreg_stats_t, table_capacity);
    field!(portreg_stats_t, bytes);
    field!(portreg_stats_t, compactions);
    field!(portreg_stats_t, changes);
    field!(portreg_stats_t, probe_max);
    field!(portreg_stats_t, reseeds);
    field!(portreg_stats_t, deferred_bytes);
    field!(portreg_stats_t, reserved);
    size!(portreg_frame_reader_t);
    field!(portreg_frame_reader_t, opaque);
    size!(bool);
    constant!(PORTREG_VERSION_MAJOR);
    constant!(PORTREG_VERSION_MINOR);
    constant!(PORTREG_VERSION_PATCH);
    constant!(PORTREG_VERSION_HEX);
    constant!(PORTREG_ID_MAX);
    constant!(PORTREG_OK);
    constant!(PORTREG_EINVAL);
    constant!(PORTREG_ENOMEM);
    constant!(PORTREG_EDECODE);
    constant!(PORTREG_ERANGE);
    constant!(PORTREG_ECONFLICT);
    constant!(PORTREG_ETIMEDOUT);
    constant!(PORTREG_EVERSION);
    constant!(PORTREG_ETOOLARGE);
    constant!(PORTREG_ETRUNCATED);
    constant!(PORTREG_ESYSTEM);
    constant!(PORTREG_EFULL);
    constant!(PORTREG_UNTRACKED);
    constant!(PORTREG_PENDING);
    constant!(PORTREG_BOUND);
    constant!(PORTREG_READY_MAX_SIZE);
    constant!(PORTREG_FRAME_VERSION);
    constant!(PORTREG_FRAME_HEADER_SIZE);
    constant!(PORTREG_FRAME_MAX_BODY);

    // The C program and this test list the same items: neither side may
    // check something the other leaves out.
    let c_keys: Vec<_> = c.keys().cloned().collect();
    let rust_keys: Vec<_> = rust.keys().cloned().collect();
    assert_eq!(c_keys, rust_keys, "the C program and the Rust test list different items");
    let mut mismatches = Vec::new();
    for (key, rust_value) in &rust {
        let c_value = c.remove(key).unwrap();
        if c_value != *rust_value {
            mismatches.push(format!("{key}: C {c_value}, Rust {rust_value}"));
        }
    }
    assert!(mismatches.is_empty(), "layout differs from the header:\n{}", mismatches.join("\n"));
    assert_eq!(rust.len(), 110, "a new item? add it to both lists and to this count");
}

#[test]
fn the_linked_library_is_the_version_of_these_declarations() {
    // Same major and minor: the ABI these declarations describe.
    // SAFETY: no arguments, no state.
    let linked = unsafe { portreg_version() };
    assert_eq!(linked >> 8, PORTREG_VERSION_HEX >> 8, "linked {linked:#x}");
}
