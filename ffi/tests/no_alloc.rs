//! `route(key)` allocates nothing: a counting global allocator (this test binary's
//! own) sees zero allocations across many lookups through the public client API,
//! after the first lookup on the thread has set up arc-swap's per-thread slot.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn routing_allocates_nothing() {
    let state = concordkv_topology::testkit::bootstrap_state(6, 64);
    let table = concordkv_topology::RoutingTable::build(&state);
    let keys: Vec<Vec<u8>> = (0..256).map(|i| format!("key-{i}").into_bytes()).collect();
    // Warm-up, then count.
    let _ = table.route(&keys[0]).unwrap();
    let before = ALLOCATIONS.load(SeqCst);
    let mut sum = 0u64;
    for key in &keys {
        let r = table.route(key).unwrap();
        sum = sum.wrapping_add(r.epoch() + r.primary().address.len() as u64);
        for n in r.replicas() {
            sum = sum.wrapping_add(n.node_id.len() as u64);
        }
    }
    assert_eq!(
        ALLOCATIONS.load(SeqCst) - before,
        0,
        "RoutingTable::route allocated"
    );
    assert!(sum > 0);
}

#[test]
fn client_route_allocates_nothing_after_warm_up() {
    use concordkv_topology::{ClientOptions, RouteError, TopologyClient};
    // Nothing listens on port 1: the client never gets a table, which is fine for
    // counting the NotReady path; the ready path is covered through the table above
    // and in the integration tests through the same `route_hash` code.
    let client = TopologyClient::new(ClientOptions::new(["127.0.0.1:1"])).unwrap();
    let _ = client.route(b"warm-up");
    let before = ALLOCATIONS.load(SeqCst);
    for i in 0..1000u32 {
        let r = client.route(&i.to_le_bytes());
        assert!(matches!(r, Err(RouteError::NotReady)));
    }
    assert_eq!(
        ALLOCATIONS.load(SeqCst) - before,
        0,
        "TopologyClient::route allocated"
    );
}
