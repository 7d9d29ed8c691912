//! The nodes follow a Sentinel failover a beat apart: until each has re-checked its sessions at
//! the new primary, what one wrote to the old primary may be missing there, and a refusal
//! decided meanwhile (a hang-up answered 600 for a call made at the other primary, a caller
//! answered 601 for a call whose end was lost) would be wrong. Found by the chaos test. A node
//! behind Sentinel therefore sends a call change as `?node`: a refusal comes back unanswered
//! with nothing done — `CRVMMOVING` while a live node has not re-checked since a failover was
//! reported, else `CRVMREFUSED <code>` — and the node confirms the primary with Sentinel and
//! sends it again, finally as `node`. These tests hold the functions to that contract.

mod common;

use common::cluster::Cluster;

/// Calls function `name` as a node would: a fresh operation ID, then `args`.
fn fcall(c: &Cluster, op: &str, name: &str, args: &[&str]) -> String {
    let epoch = c.redis.cli(&["GET", "crvm:epoch"]);
    let mut all = vec!["FCALL", name, "0", op, "60000", epoch.as_str()];
    all.extend_from_slice(args);
    c.redis.cli(&all)
}

/// How many entries node `node`'s stream holds (its answers are published there).
fn published(c: &Cluster, node: &str) -> String {
    c.redis.cli(&["XLEN", &format!("crvm:fx:{node}")])
}

fn hangup(at: &str) -> [&str; 7] {
    [at, "demo", "nobody", "1", "7", "no-such-call", ""]
}

#[test]
fn a_refusal_sent_to_be_confirmed_is_returned_unanswered_and_waits_for_the_rechecks() {
    let c = Cluster::start(2, 2000, "heartbeat_ms = 60000");
    let (n1, n2) = ("n1", "n2");
    let node_ids: Vec<String> = {
        let beats = c.redis.cli(&["ZRANGE", "crvm:beats", "0", "-1"]);
        beats.lines().map(str::to_owned).collect()
    };
    assert_eq!(node_ids, [n1, n2], "the live nodes");
    let before = published(&c, n1);
    // A failover reported by n2's beat: every live node has to re-check.
    let epoch = c.redis.cli(&["GET", "crvm:epoch"]);
    let beat = c
        .redis
        .cli(&["FCALL", "crvm_beat", "0", n2, &epoch, "60000", "1"]);
    assert_eq!(beat, "ok");
    let mut moving: Vec<String> = c
        .redis
        .cli(&["SMEMBERS", "crvm:moving"])
        .lines()
        .map(str::to_owned)
        .collect();
    moving.sort();
    assert_eq!(moving, [n1, n2], "the nodes due to re-check");
    let asked = fcall(&c, "t:1", "crvm_hangup", &hangup("?n1"));
    assert!(asked.starts_with("CRVMMOVING"), "{asked}");
    // Each node's sweep says it has re-checked.
    for n in [n1, n2] {
        let swept = fcall(
            &c,
            &format!("t:sweep:{n}"),
            "crvm_sweep",
            &[n, &epoch, "0", "0"],
        );
        assert!(!swept.contains("ERR"), "{swept}");
    }
    assert_eq!(c.redis.cli(&["EXISTS", "crvm:moving"]), "0");
    let asked = fcall(&c, "t:2", "crvm_hangup", &hangup("?n1"));
    assert_eq!(asked, "CRVMREFUSED 600");
    // Neither attempt answered the request, nor was remembered as its result.
    assert_eq!(published(&c, n1), before, "nothing published");
    assert_eq!(c.redis.cli(&["EXISTS", "crvm:op:t:1", "crvm:op:t:2"]), "0");
    // Sent as the node itself, the refusal is final: answered, and remembered.
    let plain = fcall(&c, "t:3", "crvm_hangup", &hangup(n1));
    assert_eq!(plain, "600");
    assert_ne!(published(&c, n1), before, "the answer published");
    assert_eq!(c.redis.cli(&["EXISTS", "crvm:op:t:3"]), "1");
}
