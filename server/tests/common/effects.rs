//! What the cluster's Redis functions tell the nodes: every entry appended to the nodes'
//! effect streams (`crvm:fx:<node>`), read as it comes, on a thread of its own.

use std::sync::mpsc;

use crate::common::PATIENCE;

/// The stream a test appends to last: once its entry arrives, everything before has.
pub const END: &str = "crvm:fx:~end";

type Entries = Vec<(String, Vec<(String, Vec<Vec<u8>>)>)>;

/// Every entry appended from now on to the streams of `nodes` (and to [`END`]), as (stream,
/// the entry's effects as JSON).
pub fn record(url: &str, nodes: &[&str]) -> mpsc::Receiver<(String, Vec<u8>)> {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let mut streams: Vec<String> = nodes.iter().map(|n| format!("crvm:fx:{n}")).collect();
    streams.push(END.to_owned());
    // From the last entry of each stream now.
    let mut from: Vec<String> = streams
        .iter()
        .map(|s| {
            let last: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XREVRANGE")
                .arg(s)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query(&mut conn)
                .unwrap();
            last.first().map_or("0-0".to_owned(), |(id, _)| id.clone())
        })
        .collect();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || loop {
        let got: Option<Entries> = redis::cmd("XREAD")
            .arg("BLOCK")
            .arg(PATIENCE.as_millis() as u64)
            .arg("STREAMS")
            .arg(&streams)
            .arg(&from)
            .query(&mut conn)
            .unwrap();
        for (stream, entries) in got.unwrap_or_default() {
            let i = streams.iter().position(|s| *s == stream).unwrap();
            for (id, fields) in entries {
                from[i] = id;
                let done = stream == END;
                if tx.send((stream.clone(), fields[1].clone())).is_err() || done {
                    return;
                }
            }
        }
    });
    rx
}

/// Appends the end marker (see [`END`]).
pub fn end(url: &str) {
    let mut conn = redis::Client::open(url).unwrap().get_connection().unwrap();
    let _: String = redis::cmd("XADD")
        .arg(END)
        .arg("*")
        .arg("e")
        .arg("[]")
        .query(&mut conn)
        .unwrap();
}
