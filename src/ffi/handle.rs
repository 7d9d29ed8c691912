//! The handle type and its table: the one place that fixes how a `crvm_client *` maps to a
//! client.
//!
//! A handle is an opaque token, never dereferenced: it is looked up here and the client is
//! shared (`Arc`) with the calling export for the duration of the call. A destroyed or made-up
//! handle is simply not found, so use-after-destroy and double destroy are refused, not UB.

use crate::core::Client;
use crvm_proto::error::{code, CRVIDEOSDK_MEETPARAM_ERR};
use crvm_proto::Code;
use once_cell::sync::Lazy;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// An opaque client handle, from `crvm_create` until `crvm_destroy`.
#[allow(non_camel_case_types)]
pub struct crvm_client {
    _opaque: [u8; 0],
}

struct Table {
    next: usize,
    clients: HashMap<usize, Arc<Client>>,
}

static TABLE: Lazy<Mutex<Table>> = Lazy::new(|| {
    Mutex::new(Table {
        next: 1,
        clients: HashMap::new(),
    })
});

/// Tokens step by 16 so they look like aligned pointers to tools that print them; never reused.
const STEP: usize = 16;

pub(crate) fn insert(client: Client) -> *mut crvm_client {
    let mut t = TABLE.lock();
    let key = t.next * STEP;
    t.next += 1;
    t.clients.insert(key, Arc::new(client));
    key as *mut crvm_client
}

pub(crate) fn get(h: *mut crvm_client) -> Result<Arc<Client>, Code> {
    TABLE
        .lock()
        .clients
        .get(&(h as usize))
        .cloned()
        .ok_or(code(CRVIDEOSDK_MEETPARAM_ERR))
}

pub(crate) fn remove(h: *mut crvm_client) -> Option<Arc<Client>> {
    TABLE.lock().clients.remove(&(h as usize))
}
