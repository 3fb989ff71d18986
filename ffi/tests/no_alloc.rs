//! `route(key)` allocates nothing: a counting global allocator (this test binary's
//! own) sees zero allocations across many lookups through the public client API,
//! after the first lookup on the thread has set up arc-swap's per-thread slot.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    // Per thread: the tests run in parallel and the client has its own thread, whose
    // allocations (parsing, building tables) are not the router's read path.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
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
    let before = allocations();
    let mut sum = 0u64;
    for key in &keys {
        let r = table.route(key).unwrap();
        sum = sum.wrapping_add(r.epoch() + r.primary().address.len() as u64);
        for n in r.replicas() {
            sum = sum.wrapping_add(n.node_id.len() as u64);
        }
    }
    assert_eq!(allocations() - before, 0, "RoutingTable::route allocated");
    assert!(sum > 0);
}

#[test]
fn client_route_allocates_nothing_after_warm_up() {
    use concordkv_topology::{ClientOptions, RouteError, TopologyClient};
    let addr = concordkv_topology::testkit::serve_snapshot(
        concordkv_topology::testkit::bootstrap_state(6, 64),
    );
    let client = TopologyClient::new(ClientOptions::new([addr])).unwrap();
    client
        .wait_ready(std::time::Duration::from_secs(10))
        .unwrap();
    let keys: Vec<Vec<u8>> = (0..256).map(|i| format!("key-{i}").into_bytes()).collect();
    let _ = client.route(&keys[0]).unwrap(); // sets up arc-swap's slot for this thread
    let before = allocations();
    let mut sum = 0u64;
    for key in &keys {
        let r = client.route(key).unwrap();
        sum = sum.wrapping_add(r.epoch() + r.primary().address.len() as u64);
        for n in r.replicas() {
            sum = sum.wrapping_add(n.node_id.len() as u64);
        }
    }
    assert!(matches!(client.route(b""), Err(RouteError::EmptyKey)));
    assert_eq!(allocations() - before, 0, "TopologyClient::route allocated");
    assert!(sum > 0);
}
