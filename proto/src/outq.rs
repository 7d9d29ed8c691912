//! The out-queue of one connection, used by both ends: frames wait here without a header and
//! get their sequence number when they are encoded for the wire, so that numbers follow the
//! order on the wire even though control frames overtake data.
//!
//! Two priorities: control frames (messages, heartbeats) and data chunks. [`OutQueue::encode`]
//! takes every queued control frame before at most one data chunk, so signalling never waits
//! behind more than one chunk. The queue itself is unbounded; the owner decides what a bound is
//! and what happens past it (the server closes a connection whose queue overflows; the
//! library's own flow control keeps its queue small).

use std::collections::VecDeque;
use std::sync::Arc;

use serde::Serialize;

use crate::frame::{control_prefix, Encoder, Kind, HEADER_LEN};
use crate::msg::to_json;

/// One outgoing frame, before its header is stamped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// A control message's JSON (shared, so a fan-out serialises once).
    Control(Arc<[u8]>),
    /// A control message's JSON with a binary attachment (a cmd's bytes).
    Attached(Arc<[u8]>, Vec<u8>),
    /// A data frame payload: 8-byte stream ID, then the chunk.
    Data(Vec<u8>),
    Ping,
    Pong,
}

impl Out {
    /// A control frame carrying `msg`.
    pub fn msg<T: Serialize>(msg: &T) -> Out {
        Out::Control(to_json(msg).into())
    }

    /// A control frame carrying `msg` and `attachment`.
    pub fn attached<T: Serialize>(msg: &T, attachment: Vec<u8>) -> Out {
        Out::Attached(to_json(msg).into(), attachment)
    }

    /// A data frame of stream `sid`.
    pub fn data(sid: u64, bytes: &[u8]) -> Out {
        let mut p = Vec::with_capacity(8 + bytes.len());
        p.extend_from_slice(&sid.to_be_bytes());
        p.extend_from_slice(bytes);
        Out::Data(p)
    }

    pub fn kind(&self) -> Kind {
        match self {
            Out::Control(_) | Out::Attached(..) => Kind::Control,
            Out::Data(_) => Kind::Data,
            Out::Ping => Kind::Ping,
            Out::Pong => Kind::Pong,
        }
    }

    /// Payload length in bytes.
    pub fn payload_len(&self) -> usize {
        match self {
            Out::Control(json) => 4 + json.len(),
            Out::Attached(json, att) => 4 + json.len() + att.len(),
            Out::Data(p) => p.len(),
            Out::Ping | Out::Pong => 0,
        }
    }

    /// Bytes this frame takes on the wire; what bounds count.
    pub fn cost(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    /// Appends this frame to `out`, header first, taking the next sequence number of `enc`.
    pub fn encode(&self, enc: &mut Encoder, ack: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&enc.header(self.kind(), ack, self.payload_len()));
        match self {
            Out::Control(json) => {
                out.extend_from_slice(&control_prefix(json));
                out.extend_from_slice(json);
            }
            Out::Attached(json, att) => {
                out.extend_from_slice(&control_prefix(json));
                out.extend_from_slice(json);
                out.extend_from_slice(att);
            }
            Out::Data(p) => out.extend_from_slice(p),
            Out::Ping | Out::Pong => {}
        }
    }
}

/// Queued frames of one connection and its outgoing sequence numbers.
#[derive(Debug, Default)]
pub struct OutQueue {
    control: VecDeque<Out>,
    data: VecDeque<Out>,
    control_bytes: usize,
    data_bytes: usize,
    enc: Encoder,
}

impl OutQueue {
    pub fn new() -> OutQueue {
        OutQueue::default()
    }

    /// Queues a control-priority frame (messages, pings, pongs).
    pub fn push(&mut self, out: Out) {
        self.control_bytes += out.cost();
        self.control.push_back(out);
    }

    /// Queues a data chunk (lower priority than every control frame).
    pub fn push_data(&mut self, out: Out) {
        self.data_bytes += out.cost();
        self.data.push_back(out);
    }

    /// Wire bytes of the queued control frames.
    pub fn control_bytes(&self) -> usize {
        self.control_bytes
    }

    /// Wire bytes of the queued data chunks.
    pub fn data_bytes(&self) -> usize {
        self.data_bytes
    }

    /// Data chunks queued.
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.control.is_empty() && self.data.is_empty()
    }

    /// Drops everything queued (the connection is gone).
    pub fn clear(&mut self) {
        self.control.clear();
        self.data.clear();
        self.control_bytes = 0;
        self.data_bytes = 0;
    }

    /// Sequence number the next frame will carry.
    pub fn next_seq(&self) -> u64 {
        self.enc.next_seq()
    }

    /// Appends queued frames to `buf`, stamped with their sequence numbers and `ack`: control
    /// frames until `buf` holds `max` bytes, or — only if there was no control frame — one data
    /// chunk. Returns how many frames it wrote.
    pub fn encode(&mut self, ack: u64, buf: &mut Vec<u8>, max: usize) -> usize {
        let mut n = 0;
        while buf.len() < max {
            let Some(out) = self.control.pop_front() else {
                break;
            };
            self.control_bytes -= out.cost();
            out.encode(&mut self.enc, ack, buf);
            n += 1;
        }
        if n == 0 {
            if let Some(out) = self.data.pop_front() {
                self.data_bytes -= out.cost();
                out.encode(&mut self.enc, ack, buf);
                n = 1;
            }
        }
        n
    }

    /// Like [`OutQueue::encode`] into `batch`, except that large payloads — a data chunk, a
    /// cmd's bytes — are not copied: the batch keeps them and they are written in place
    /// (vectored I/O), so the relay forwards them without copying them again.
    pub fn encode_batch(&mut self, ack: u64, batch: &mut Batch, max: usize) -> usize {
        let mut n = 0;
        while batch.len < max {
            let Some(out) = self.control.pop_front() else {
                break;
            };
            self.control_bytes -= out.cost();
            batch.push(&mut self.enc, ack, out);
            n += 1;
        }
        if n == 0 {
            if let Some(out) = self.data.pop_front() {
                self.data_bytes -= out.cost();
                batch.push(&mut self.enc, ack, out);
                n = 1;
            }
        }
        n
    }

    /// The header of a frame of `len` payload bytes that the caller writes itself (a data
    /// chunk read straight from a file into the write buffer), with the next sequence number.
    pub fn header(&mut self, kind: Kind, ack: u64, len: usize) -> [u8; HEADER_LEN] {
        self.enc.header(kind, ack, len)
    }
}

/// Encoded frames ready for one vectored write: small parts (headers, JSON, small payloads)
/// copied into `bytes`, large payloads kept as they are, in wire order.
#[derive(Debug, Default)]
pub struct Batch {
    bytes: Vec<u8>,
    /// The write in order: `Ok(end)` is `bytes[previous end..end]`, `Err(i)` is `owned[i]`.
    spans: Vec<Result<usize, usize>>,
    owned: Vec<Vec<u8>>,
    /// Wire bytes in the batch.
    len: usize,
}

/// Payloads at least this large are written in place rather than copied.
const IN_PLACE: usize = 2048;
/// A batch takes at most this many payloads in place (a writev takes at most 1024 parts).
const MAX_OWNED: usize = 256;

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Wire bytes in the batch.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Empties the batch, keeping its memory for the next one (unless it grew past `keep`).
    pub fn clear(&mut self, keep: usize) {
        if self.bytes.capacity() > keep {
            self.bytes = Vec::new();
        }
        self.bytes.clear();
        self.spans.clear();
        self.owned.clear();
        self.len = 0;
    }

    fn push(&mut self, enc: &mut Encoder, ack: u64, out: Out) {
        self.len += out.cost();
        let payload = match out {
            Out::Attached(json, att) if att.len() >= IN_PLACE && self.owned.len() < MAX_OWNED => {
                self.bytes.extend_from_slice(&enc.header(
                    Kind::Control,
                    ack,
                    4 + json.len() + att.len(),
                ));
                self.bytes.extend_from_slice(&control_prefix(&json));
                self.bytes.extend_from_slice(&json);
                att
            }
            Out::Data(p) if p.len() >= IN_PLACE && self.owned.len() < MAX_OWNED => {
                self.bytes
                    .extend_from_slice(&enc.header(Kind::Data, ack, p.len()));
                p
            }
            small => return small.encode(enc, ack, &mut self.bytes),
        };
        self.spans.push(Ok(self.bytes.len()));
        self.spans.push(Err(self.owned.len()));
        self.owned.push(payload);
    }

    /// The parts of the batch from wire offset `from` on, for a vectored write.
    pub fn slices(&self, from: usize) -> Vec<std::io::IoSlice<'_>> {
        let mut parts: Vec<&[u8]> = Vec::with_capacity(self.spans.len() + 1);
        let mut start = 0;
        for span in &self.spans {
            match *span {
                Ok(end) => {
                    parts.push(&self.bytes[start..end]);
                    start = end;
                }
                Err(i) => parts.push(&self.owned[i]),
            }
        }
        parts.push(&self.bytes[start..]);
        let mut at = 0;
        let mut out = Vec::with_capacity(parts.len());
        for part in parts {
            let end = at + part.len();
            if end > from && !part.is_empty() {
                out.push(std::io::IoSlice::new(&part[from.saturating_sub(at)..]));
            }
            at = end;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Decoder;

    fn json(n: usize) -> Out {
        Out::Control(vec![b'x'; n].into())
    }

    fn frames(wire: &[u8]) -> Vec<(Kind, u64, Vec<u8>)> {
        let mut dec = Decoder::new(1 << 20);
        dec.feed(wire);
        let mut out = Vec::new();
        while let Some(f) = dec.next_frame().unwrap() {
            out.push((f.kind, f.seq, f.payload));
        }
        out
    }

    #[test]
    fn control_first_one_chunk_at_a_time_numbered_in_wire_order() {
        let mut q = OutQueue::new();
        q.push_data(Out::data(1, &[0; 16]));
        q.push_data(Out::data(1, &[1; 16]));
        q.push(json(3));
        q.push(Out::Pong);
        let mut wire = Vec::new();
        assert_eq!(q.encode(7, &mut wire, 1 << 20), 2);
        assert_eq!(q.encode(7, &mut wire, 1 << 20), 1, "then one chunk");
        q.push(json(1));
        assert_eq!(
            q.encode(7, &mut wire, 1 << 20),
            1,
            "a new control frame goes first"
        );
        assert_eq!(q.encode(7, &mut wire, 1 << 20), 1);
        assert_eq!(q.encode(7, &mut wire, 1 << 20), 0);
        assert!(q.is_empty());
        assert_eq!((q.control_bytes(), q.data_bytes()), (0, 0));
        let got = frames(&wire);
        let kinds: Vec<Kind> = got.iter().map(|f| f.0).collect();
        assert_eq!(
            kinds,
            [
                Kind::Control,
                Kind::Pong,
                Kind::Data,
                Kind::Control,
                Kind::Data
            ]
        );
        assert_eq!(got.iter().map(|f| f.1).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        assert_eq!(got[2].2[8..], [0; 16]);
        assert_eq!(got[4].2[8..], [1; 16]);
    }

    #[test]
    fn batches_keep_large_payloads_in_place_and_write_the_same_bytes() {
        let mut q = OutQueue::new();
        q.push_data(Out::data(3, &[9; 5000]));
        q.push(json(2));
        q.push(Out::Attached(vec![b'j'; 10].into(), vec![7; 4096]));
        q.push(Out::Attached(vec![b'k'; 10].into(), vec![8; 10]));
        let mut b = Batch::new();
        assert_eq!(q.encode_batch(0, &mut b, 1 << 20), 3, "control first");
        assert_eq!(b.owned.len(), 1, "the large attachment only");
        let mut wire: Vec<u8> = b.slices(0).iter().flat_map(|s| s.to_vec()).collect();
        assert_eq!(wire.len(), b.len());
        // Resuming a partial write from any offset gives the rest exactly.
        for from in [0, 1, 40, 4096, b.len() - 1] {
            let rest: Vec<u8> = b.slices(from).iter().flat_map(|s| s.to_vec()).collect();
            assert_eq!(rest, wire[from..], "from {from}");
        }
        b.clear(usize::MAX);
        assert_eq!(q.encode_batch(0, &mut b, 1 << 20), 1, "then the chunk");
        wire.extend(b.slices(0).iter().flat_map(|s| s.to_vec()));
        assert!(q.is_empty() && q.data_bytes() == 0);
        let got = frames(&wire);
        assert_eq!(got.len(), 4);
        assert_eq!(got[1].2[4 + 10..], [7; 4096]);
        assert_eq!((got[3].0, got[3].1), (Kind::Data, 4));
        assert_eq!(got[3].2[8..], [9; 5000]);
    }

    #[test]
    fn encode_stops_near_max_and_counts_bytes() {
        let mut q = OutQueue::new();
        for _ in 0..10 {
            q.push(json(100));
        }
        assert_eq!(q.control_bytes(), 10 * json(100).cost());
        let mut wire = Vec::new();
        // Stops once `max` is reached: at most one frame beyond it.
        let n = q.encode(0, &mut wire, 300);
        assert_eq!(n, 3);
        assert_eq!(q.control_bytes(), 7 * json(100).cost());
        // Headers the caller writes itself share the numbering.
        let h = q.header(Kind::Data, 0, 8);
        wire.extend_from_slice(&h);
        wire.extend_from_slice(&9u64.to_be_bytes());
        q.encode(0, &mut wire, usize::MAX);
        let seqs: Vec<u64> = frames(&wire).iter().map(|f| f.1).collect();
        assert_eq!(seqs, (1..=11).collect::<Vec<_>>());
    }
}
