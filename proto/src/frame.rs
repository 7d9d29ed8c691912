//! Framing: every frame is a fixed 24-byte header followed by `len` payload bytes.
//!
//! ```text
//! offset size field
//!  0     4    len    payload length in bytes (big-endian u32), checked against the
//!                    receiver's maximum before a single payload byte is buffered
//!  4     1    kind   1 control, 2 data, 3 ping, 4 pong, 5 ack
//!  5     1    flags  0 in protocol version 1
//!  6     2    rsv    0
//!  8     8    seq    sender's sequence number of this frame: 1, 2, 3, … per direction and
//!                    session (not per connection); 0 for an unnumbered frame
//! 16     8    ack    highest sequence number the sender has handled from its peer (0 = none)
//! ```
//!
//! Numbered frames (control and data) carry a session's traffic and are what session
//! resumption replays; unnumbered ones (heartbeats, standalone acknowledgements, the handshake
//! of a connection) belong to one connection only. The decoder discards a numbered frame it
//! already had and refuses one from the future (a gap).

use std::fmt;

/// Size of the fixed frame header.
pub const HEADER_LEN: usize = 24;

/// Largest payload a client may send to the server (cmds, chunks, requests).
pub const MAX_PAYLOAD_TO_SERVER: u32 = 256 * 1024;
/// Largest payload the server sends to a client (status and meeting lists can be long).
pub const MAX_PAYLOAD_TO_CLIENT: u32 = 16 * 1024 * 1024;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A JSON control message, optionally followed by a binary attachment (see [`Frame::control`]).
    Control = 1,
    /// A binary data chunk of a transfer: 8-byte big-endian stream ID, then raw bytes.
    Data = 2,
    /// Heartbeat probe; the peer answers with [`Kind::Pong`]. Empty payload.
    Ping = 3,
    /// Heartbeat answer. Empty payload.
    Pong = 4,
    /// A standalone acknowledgement (its header's `ack`), for when traffic is one-sided.
    /// Empty payload, unnumbered.
    Ack = 5,
}

impl Kind {
    /// Whether frames of this kind carry a sequence number (control frames outside a
    /// connection's handshake, data frames) rather than 0.
    pub fn numbered(self) -> bool {
        matches!(self, Kind::Control | Kind::Data)
    }

    fn from_u8(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::Control),
            2 => Some(Kind::Data),
            3 => Some(Kind::Ping),
            4 => Some(Kind::Pong),
            5 => Some(Kind::Ack),
            _ => None,
        }
    }
}

/// Why a byte stream is not a valid frame sequence. Each one ends the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix is above the receiver's maximum.
    TooLarge { len: u32, max: u32 },
    /// Unknown frame kind byte.
    BadKind(u8),
    /// Non-zero flags or reserved bits.
    BadFlags,
    /// A numbered frame from the future: `seq` beyond the previous one plus one (or an
    /// unnumbered frame of a kind that must be numbered, or the reverse).
    BadSeq { expected: u64, got: u64 },
    /// A control payload whose JSON length runs past the payload.
    BadControl,
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::TooLarge { len, max } => write!(f, "frame of {len} bytes exceeds {max}"),
            FrameError::BadKind(k) => write!(f, "unknown frame kind {k}"),
            FrameError::BadFlags => f.write_str("non-zero flags or reserved bits"),
            FrameError::BadSeq { expected, got } => {
                write!(f, "sequence {got} where {expected} was expected")
            }
            FrameError::BadControl => f.write_str("control payload shorter than its JSON length"),
        }
    }
}

impl std::error::Error for FrameError {}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: Kind,
    pub seq: u64,
    pub ack: u64,
    pub payload: Vec<u8>,
}

impl Frame {
    /// Splits a control payload into its JSON text and binary attachment.
    /// Layout: 4-byte big-endian JSON length, JSON bytes, attachment bytes (possibly none).
    pub fn control(&self) -> Result<(&[u8], &[u8]), FrameError> {
        split_control(&self.payload)
    }
}

/// See [`Frame::control`].
pub fn split_control(payload: &[u8]) -> Result<(&[u8], &[u8]), FrameError> {
    if payload.len() < 4 {
        return Err(FrameError::BadControl);
    }
    let json_len = u32::from_be_bytes(payload[..4].try_into().unwrap()) as usize;
    let rest = &payload[4..];
    if json_len > rest.len() {
        return Err(FrameError::BadControl);
    }
    Ok(rest.split_at(json_len))
}

/// A data frame's payload split into its stream ID and bytes (the decoder checked that the
/// 8-byte stream ID is there).
pub fn split_data(payload: &[u8]) -> (u64, &[u8]) {
    let (sid, bytes) = payload.split_at(8);
    (u64::from_be_bytes(sid.try_into().expect("8 bytes")), bytes)
}

/// Builds control payloads and whole frames; owns the outgoing sequence counter.
#[derive(Debug, Default)]
pub struct Encoder {
    next_seq: u64,
}

impl Encoder {
    pub fn new() -> Self {
        Encoder { next_seq: 1 }
    }

    /// Sequence number the next frame will carry.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.max(1)
    }

    /// Encodes one frame. `ack` is the highest sequence number received from the peer.
    pub fn frame(&mut self, kind: Kind, ack: u64, parts: &[&[u8]]) -> Vec<u8> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut out = Vec::with_capacity(HEADER_LEN + len);
        out.extend_from_slice(&self.header(kind, ack, len));
        for p in parts {
            out.extend_from_slice(p);
        }
        out
    }

    /// The header of the next frame, for writers that put it in front of a payload themselves.
    /// Heartbeats and standalone acknowledgements are unnumbered (`seq` 0) and take no number.
    pub fn header(&mut self, kind: Kind, ack: u64, len: usize) -> [u8; HEADER_LEN] {
        if !kind.numbered() {
            return header_at(kind, 0, ack, len);
        }
        let seq = self.next_seq();
        self.next_seq = seq + 1;
        header_at(kind, seq, ack, len)
    }

    /// Continues the numbering after `last` (a resumed session's next frame is `last + 1`).
    pub fn continue_after(&mut self, last: u64) {
        self.next_seq = last + 1;
    }

    /// Fills in the header of `frame`, a buffer made by [`unstamped`], taking the next sequence
    /// number. For senders that queue frames and decide the order only when writing them
    /// (control before data): sequence numbers must follow the order on the wire.
    pub fn stamp(&mut self, frame: &mut [u8], kind: Kind, ack: u64) {
        let h = self.header(kind, ack, frame.len() - HEADER_LEN);
        frame[..HEADER_LEN].copy_from_slice(&h);
    }

    /// Encodes a control frame: JSON text plus an optional binary attachment.
    pub fn control(&mut self, ack: u64, json: &[u8], attachment: &[u8]) -> Vec<u8> {
        let jl = (json.len() as u32).to_be_bytes();
        self.frame(Kind::Control, ack, &[&jl, json, attachment])
    }
}

/// A frame header with the given sequence number: `seq` 0 for an unnumbered frame (a
/// connection's handshake), or the original number of a frame sent again after a resume.
pub fn header_at(kind: Kind, seq: u64, ack: u64, len: usize) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&(len as u32).to_be_bytes());
    h[4] = kind as u8;
    h[8..16].copy_from_slice(&seq.to_be_bytes());
    h[16..24].copy_from_slice(&ack.to_be_bytes());
    h
}

/// An unnumbered control frame carrying `json`: a message of a connection's handshake.
pub fn handshake_frame(json: &[u8]) -> Vec<u8> {
    let mut f = header_at(Kind::Control, 0, 0, 4 + json.len()).to_vec();
    f.extend_from_slice(&control_prefix(json));
    f.extend_from_slice(json);
    f
}

/// A frame buffer with room for its header (zeroed) followed by `parts`, to be completed by
/// [`Encoder::stamp`] when it is about to be written.
pub fn unstamped(parts: &[&[u8]]) -> Vec<u8> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(HEADER_LEN + len);
    out.resize(HEADER_LEN, 0);
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

/// The JSON-length prefix of a control payload.
pub fn control_prefix(json: &[u8]) -> [u8; 4] {
    (json.len() as u32).to_be_bytes()
}

/// Incremental decoder: feed it bytes as they arrive, take whole frames out.
///
/// The length prefix is checked as soon as its four bytes are in, so an oversized frame is
/// refused before the rest of its header, let alone its payload, is waited for. The buffer never holds more than one maximal
/// frame plus what the caller fed beyond it.
///
/// Memory follows the traffic: an idle connection keeps a `READ_MIN` buffer. The room
/// offered per read doubles while reads fill it (up to `READ_MAX`) and drops back after a
/// small read; a frame whose (valid) header has arrived gets room for its rest at once (up to
/// `READ_MAX` per read). Once everything buffered is decoded, a buffer much larger than the
/// current room is given back.
#[derive(Debug)]
pub struct Decoder {
    /// Bytes `start..end` are received and not yet decoded; `end..` is room to read into.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_payload: u32,
    last_seq: u64,
    /// Numbered frames discarded because they were already had.
    dups: u64,
    /// Room the next read is offered when no frame's size says more.
    room: usize,
    /// Room the last [`Decoder::spare`] offered.
    offered: usize,
    /// Where large data payloads get a buffer of their own ([`Decoder::own_payloads`]).
    source: Option<fn(usize) -> Vec<u8>>,
    /// The data frame whose payload is being read into its own buffer.
    own: Option<Owned>,
    /// The payload of the frame last returned, if it had its own buffer
    /// ([`Decoder::take_payload`]).
    done: Option<Vec<u8>>,
    /// The last read completed a payload of its own: the next takes only [`HEAD_READ`], so
    /// that the next chunk's header comes in with little of its payload (which would otherwise
    /// be copied out of the shared buffer).
    head_only: bool,
    /// Buffers given back ([`Decoder::give_back`]), used before asking the source for one.
    spares: Vec<Vec<u8>>,
}

/// Most buffers [`Decoder::give_back`] keeps.
const SPARES: usize = 4;

/// A data frame being read into a buffer of its own: its header, and its payload so far.
#[derive(Debug)]
struct Owned {
    h: Header,
    /// The payload's full length (initialised memory); `..got` is received.
    buf: Vec<u8>,
    got: usize,
}

/// Smallest data payload read into a buffer of its own (when payloads are owned); the largest
/// is [`READ_MAX`], so that a header alone never costs more memory than one read would (a
/// larger payload grows the shared buffer as its bytes come, as without owned payloads).
pub(crate) const OWN_MIN: usize = 16 * 1024;
/// What a read takes right after a payload of its own: a header and a little more.
const HEAD_READ: usize = 4 * 1024;

/// Smallest room [`Decoder::spare`] offers, and the buffer an idle decoder keeps.
const READ_MIN: usize = 512;
/// Largest room [`Decoder::spare`] offers for one read: several data chunks per system call
/// while a transfer streams (an idle connection shrinks back to [`READ_MIN`]).
const READ_MAX: usize = 256 * 1024;

impl Decoder {
    pub fn new(max_payload: u32) -> Self {
        Decoder {
            buf: Vec::new(),
            start: 0,
            end: 0,
            max_payload,
            last_seq: 0,
            dups: 0,
            room: READ_MIN,
            offered: 0,
            source: None,
            own: None,
            done: None,
            head_only: false,
            spares: Vec::new(),
        }
    }

    /// Keeps `buf` (whatever its contents) for a payload of its own to come, unless it has
    /// enough already.
    pub fn give_back(&mut self, buf: Vec<u8>) {
        if self.spares.len() < SPARES {
            self.spares.push(buf);
        }
    }

    /// Whether [`Decoder::give_back`] would keep another buffer (with payloads of their own).
    pub fn wants_buffers(&self) -> bool {
        self.source.is_some() && self.spares.len() < SPARES
    }

    /// From now on, each data payload of 16 to 256 KiB whose header arrives before the rest of
    /// it is read straight into a buffer of its own, which `source(len)` gives (`len` bytes
    /// long, any contents) and [`Decoder::take_payload`] hands over: a relay then passes chunks
    /// on without copying them out of the shared buffer.
    pub fn own_payloads(&mut self, source: fn(usize) -> Vec<u8>) {
        self.source = Some(source);
    }

    /// The payload of the frame [`Decoder::next_frame_ref`] returned last, if it was read into
    /// a buffer of its own (else `None`: it is in the shared buffer, and the frame borrows it).
    pub fn take_payload(&mut self) -> Option<Vec<u8>> {
        self.done.take()
    }

    /// Highest sequence number decoded so far (what this side acknowledges once handled).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// A new connection of a resumed session: numbered frames up to `last` were had on an
    /// earlier one (resent ones are discarded), the next is `last + 1`.
    pub fn continue_after(&mut self, last: u64) {
        self.last_seq = last;
    }

    /// Numbered frames discarded so far because they were already had.
    pub fn duplicates(&self) -> u64 {
        self.dups
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        let own = self.own.as_ref().map_or(0, |o| HEADER_LEN + o.got);
        self.end - self.start + own
    }

    /// Bytes of memory the buffer holds (for tests and measurements).
    pub fn capacity(&self) -> usize {
        self.buf.capacity() + self.own.as_ref().map_or(0, |o| o.buf.capacity())
    }

    /// Room to read received bytes into directly (at least `READ_MIN` bytes); report how many
    /// were written with [`Decoder::filled`]. Saves copying every byte through another buffer.
    pub fn spare(&mut self) -> &mut [u8] {
        // Checked first: a match on `self.own` that returns a borrow from one arm keeps all of
        // `self` borrowed in the other (a limit of today's borrow checker).
        if self.own.is_none() {
            return self.shared_spare();
        }
        let Some(o) = &mut self.own else {
            unreachable!("checked above")
        };
        self.offered = o.buf.len() - o.got;
        &mut o.buf[o.got..]
    }

    /// [`Decoder::spare`] in the shared buffer.
    fn shared_spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > 2 * self.room {
                // A burst or a large frame has passed: give the memory back.
                self.buf = Vec::new();
            }
        }
        let want = if self.head_only {
            HEAD_READ
        } else {
            self.room.max(self.frame_rest().min(READ_MAX))
        };
        if self.buf.len() - self.end < want {
            // Move the unread tail (less than one frame) to the front only once half the buffer
            // is consumed, so a stream of frames is rarely copied twice.
            if self.start > 0 && self.start >= self.buf.len() / 2 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let len = self.end + want;
            if self.buf.len() < len {
                // Exactly as far as needed: an idle connection keeps one small read's worth.
                self.buf.reserve_exact(len - self.buf.len());
                self.buf.resize(len, 0);
            }
        }
        let end = if self.head_only {
            self.end + want
        } else {
            self.buf.len()
        };
        self.offered = end - self.end;
        &mut self.buf[self.end..end]
    }

    /// Bytes still missing of the frame whose header is buffered, if that header's length is
    /// acceptable (an oversized one is refused by [`Decoder::next_frame`] and gets no room).
    fn frame_rest(&self) -> usize {
        let avail = &self.buf[self.start..self.end];
        if avail.len() < 4 {
            return 0;
        }
        let len = u32::from_be_bytes(avail[..4].try_into().unwrap());
        if len > self.max_payload {
            return 0;
        }
        (HEADER_LEN + len as usize).saturating_sub(avail.len())
    }

    /// `n` bytes were read into [`Decoder::spare`].
    pub fn filled(&mut self, n: usize) {
        if let Some(o) = &mut self.own {
            assert!(o.got + n <= o.buf.len(), "filled past the spare room");
            o.got += n;
            return;
        }
        self.head_only = false;
        assert!(self.end + n <= self.buf.len(), "filled past the spare room");
        self.end += n;
        if n >= self.offered && n > 0 {
            // The read took all the room: more may be waiting, offer more next time.
            self.room = (self.room * 2).min(READ_MAX);
        } else if n <= self.room / 8 {
            // A small read: the burst is over.
            self.room = (2 * n).next_power_of_two().clamp(READ_MIN, READ_MAX);
        }
    }

    /// Appends received bytes (for callers that already hold them in a buffer).
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = self.spare();
            let n = room.len().min(data.len());
            room[..n].copy_from_slice(&data[..n]);
            self.filled(n);
            data = &data[n..];
        }
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed, or the error that must end
    /// the connection. After an error the decoder must not be used again.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        Ok(self.next_frame_ref()?.map(|f| Frame {
            kind: f.kind,
            seq: f.seq,
            ack: f.ack,
            payload: f.payload.to_vec(),
        }))
    }

    /// Like [`Decoder::next_frame`], but the payload is borrowed from the decoder's buffer (no
    /// copy, no allocation): the receive path of both ends.
    ///
    /// A length prefix over the maximum is refused as soon as its four bytes are in, before the
    /// rest of the header arrives.
    pub fn next_frame_ref(&mut self) -> Result<Option<FrameRef<'_>>, FrameError> {
        // One not taken is dropped.
        self.done = None;
        if let Some(o) = &self.own {
            if o.got < o.buf.len() {
                return Ok(None);
            }
            let o = self.own.take().expect("checked");
            self.head_only = true;
            // Its header was checked when it began; no frame was decoded since.
            if o.h.seq <= self.last_seq {
                self.dups += 1;
                return self.next_frame_ref();
            }
            self.last_seq = o.h.seq;
            let payload = &self.done.insert(o.buf)[..];
            return Ok(Some(FrameRef {
                kind: Kind::Data,
                seq: o.h.seq,
                ack: o.h.ack,
                payload,
                owned: true,
            }));
        }
        let avail = &self.buf[self.start..self.end];
        if avail.len() >= 4 {
            let len = u32::from_be_bytes(avail[..4].try_into().unwrap());
            if len > self.max_payload {
                return Err(FrameError::TooLarge {
                    len,
                    max: self.max_payload,
                });
            }
        }
        if avail.len() < HEADER_LEN {
            return Ok(None);
        }
        let h = parse_header(avail[..HEADER_LEN].try_into().unwrap(), self.max_payload)?;
        let numbered = h.kind.numbered() && h.seq != 0;
        let bad_seq = if numbered {
            h.seq > self.last_seq + 1
        } else {
            // Only a control frame may be unnumbered (a connection's handshake).
            h.seq != 0 || h.kind == Kind::Data
        };
        if bad_seq {
            return Err(FrameError::BadSeq {
                expected: self.last_seq + 1,
                got: h.seq,
            });
        }
        let total = HEADER_LEN + h.len as usize;
        if avail.len() < total {
            if let Some(source) = self.source.filter(|_| {
                let len = h.len as usize;
                h.kind == Kind::Data && numbered && (OWN_MIN..=READ_MAX).contains(&len)
            }) {
                // The rest is read into a buffer of its own; what came with the header is
                // moved there, and the shared buffer is empty.
                let mut buf = match self.spares.pop() {
                    Some(mut b) => {
                        // Resized, not cleared: one as long as the last chunk is not zeroed.
                        b.resize(h.len as usize, 0);
                        b
                    }
                    None => source(h.len as usize),
                };
                let have = avail.len() - HEADER_LEN;
                buf[..have].copy_from_slice(&avail[HEADER_LEN..]);
                self.start = self.end;
                self.own = Some(Owned { h, buf, got: have });
            }
            return Ok(None);
        }
        let at = self.start;
        self.start += total;
        if numbered && h.seq <= self.last_seq {
            // Already had (sent again after a resume): discarded, not handled twice.
            self.dups += 1;
            return self.next_frame_ref();
        }
        if numbered {
            self.last_seq = h.seq;
        }
        let payload = &self.buf[at + HEADER_LEN..at + total];
        if h.kind == Kind::Control {
            split_control(payload)?;
        } else if h.kind == Kind::Data && payload.len() < 8 {
            return Err(FrameError::BadControl);
        }
        Ok(Some(FrameRef {
            kind: h.kind,
            seq: h.seq,
            ack: h.ack,
            payload,
            owned: false,
        }))
    }
}

/// A decoded frame whose payload is still in the decoder's buffer (see
/// [`Decoder::next_frame_ref`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRef<'a> {
    pub kind: Kind,
    pub seq: u64,
    pub ack: u64,
    pub payload: &'a [u8],
    /// The payload has a buffer of its own, which [`Decoder::take_payload`] hands over.
    pub owned: bool,
}

impl<'a> FrameRef<'a> {
    /// A control frame's JSON text and attachment (checked by the decoder).
    pub fn control(&self) -> Result<(&'a [u8], &'a [u8]), FrameError> {
        split_control(self.payload)
    }
}

/// A validated header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub len: u32,
    pub kind: Kind,
    pub seq: u64,
    pub ack: u64,
}

/// Validates a raw header against `max_payload`.
pub fn parse_header(h: &[u8; HEADER_LEN], max_payload: u32) -> Result<Header, FrameError> {
    let len = u32::from_be_bytes(h[0..4].try_into().unwrap());
    if len > max_payload {
        return Err(FrameError::TooLarge {
            len,
            max: max_payload,
        });
    }
    let kind = Kind::from_u8(h[4]).ok_or(FrameError::BadKind(h[4]))?;
    if h[5] != 0 || h[6] != 0 || h[7] != 0 {
        return Err(FrameError::BadFlags);
    }
    Ok(Header {
        len,
        kind,
        seq: u64::from_be_bytes(h[8..16].try_into().unwrap()),
        ack: u64::from_be_bytes(h[16..24].try_into().unwrap()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_byte_by_byte() {
        let mut enc = Encoder::new();
        let mut wire = enc.control(0, br#"{"t":"hello"}"#, b"");
        wire.extend(enc.control(7, b"{}", &[1, 2, 3]));
        wire.extend(enc.frame(Kind::Ping, 7, &[]));
        let mut dec = Decoder::new(1024);
        let mut frames = Vec::new();
        for b in &wire {
            dec.feed(std::slice::from_ref(b));
            while let Some(f) = dec.next_frame().unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(frames.len(), 3);
        assert_eq!(
            frames[0].control().unwrap(),
            (&br#"{"t":"hello"}"#[..], &b""[..])
        );
        assert_eq!(frames[1].control().unwrap(), (&b"{}"[..], &[1u8, 2, 3][..]));
        assert_eq!(frames[1].ack, 7);
        assert_eq!(frames[2].kind, Kind::Ping);
        // Heartbeats are unnumbered.
        assert_eq!(frames.iter().map(|f| f.seq).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(dec.buffered(), 0);
    }

    #[test]
    fn large_chunks_are_read_into_buffers_of_their_own_whatever_the_reads_take() {
        let mut enc = Encoder::new();
        let (mut wire, mut want) = (Vec::new(), Vec::new());
        for (i, n) in [OWN_MIN, OWN_MIN - 1, 100_000, READ_MAX + 1, 131_072, 9]
            .iter()
            .enumerate()
        {
            let mut p = (i as u64 + 1).to_be_bytes().to_vec();
            p.extend((0..*n - 8).map(|k| (k * 7 + i) as u8));
            wire.extend(enc.frame(Kind::Data, 0, &[&p]));
            want.push((Kind::Data, p));
            wire.extend(enc.control(0, b"{}", b"x"));
            want.push((
                Kind::Control,
                control_prefix(b"{}")
                    .iter()
                    .chain(b"{}x")
                    .copied()
                    .collect(),
            ));
        }
        for step in [1, 7, 4096, 65_536, usize::MAX] {
            let mut dec = Decoder::new(1 << 20);
            // A stale buffer's contents must not show through.
            dec.own_payloads(|n| vec![0xAA; n]);
            // The first chunk was had on an earlier connection: read, then discarded.
            dec.continue_after(1);
            let (mut got, mut at, mut after_own) = (Vec::new(), 0, false);
            while at < wire.len() {
                let room = dec.spare();
                if after_own {
                    assert!(room.len() <= HEAD_READ, "{step}: {}", room.len());
                }
                let n = room.len().min(step).min(wire.len() - at);
                room[..n].copy_from_slice(&wire[at..at + n]);
                dec.filled(n);
                at += n;
                after_own = false;
                while let Some(f) = dec.next_frame_ref().unwrap() {
                    let (kind, owned, payload) = (f.kind, f.owned, f.payload.to_vec());
                    if owned {
                        assert_eq!(dec.take_payload(), Some(payload.clone()));
                        after_own = true;
                    } else {
                        assert_eq!(dec.take_payload(), None);
                    }
                    let ownable = (OWN_MIN..=READ_MAX).contains(&payload.len());
                    assert!(!owned || (kind == Kind::Data && ownable));
                    // Byte by byte, every large chunk's header comes before its payload.
                    if step == 1 && kind == Kind::Data {
                        assert_eq!(owned, ownable, "{}", payload.len());
                    }
                    got.push((kind, payload));
                }
            }
            assert_eq!(got.len(), want.len() - 1, "{step}");
            assert!(got.iter().zip(&want[1..]).all(|(g, w)| g == w), "{step}");
            assert_eq!(
                (dec.duplicates(), dec.last_seq(), dec.buffered()),
                (1, 12, 0)
            );
        }
    }

    #[test]
    fn stamped_frames_match_encoded_ones() {
        let (mut a, mut b) = (Encoder::new(), Encoder::new());
        let mut f = unstamped(&[&control_prefix(b"{}"), b"{}", b"att"]);
        b.stamp(&mut f, Kind::Control, 9);
        assert_eq!(f, a.control(9, b"{}", b"att"));
        assert_eq!(a.next_seq(), b.next_seq());
    }

    #[test]
    fn frames_already_had_are_discarded_and_numbering_continues_after_a_resume() {
        let mut enc = Encoder::new();
        let wire: Vec<Vec<u8>> = (0..4).map(|_| enc.control(0, b"{}", &[])).collect();
        let mut dec = Decoder::new(100);
        dec.feed(&wire[0]);
        dec.feed(&wire[1]);
        assert_eq!(dec.next_frame().unwrap().unwrap().seq, 1);
        assert_eq!(dec.next_frame().unwrap().unwrap().seq, 2);
        // A new connection: the peer sends 2 again (it did not know we had it), then 3, 4.
        let mut dec2 = Decoder::new(100);
        dec2.continue_after(dec.last_seq());
        for f in &wire[1..] {
            dec2.feed(f);
        }
        dec2.feed(&header_at(Kind::Control, 0, 0, 4)); // a handshake frame
        dec2.feed(&[0; 4]);
        let seqs: Vec<u64> = std::iter::from_fn(|| dec2.next_frame().unwrap())
            .map(|f| f.seq)
            .collect();
        assert_eq!(seqs, [3, 4, 0]);
        assert_eq!((dec2.duplicates(), dec2.last_seq()), (1, 4));
    }

    #[test]
    fn oversized_is_refused_from_the_length_alone() {
        // The four length bytes are enough: no need to wait for the rest of the header.
        for sent in [4, 5, HEADER_LEN] {
            let mut dec = Decoder::new(100);
            let mut h = [0u8; HEADER_LEN];
            h[..4].copy_from_slice(&u32::MAX.to_be_bytes());
            h[4] = 1;
            dec.feed(&h[..sent]);
            assert_eq!(
                dec.next_frame(),
                Err(FrameError::TooLarge {
                    len: u32::MAX,
                    max: 100
                }),
                "{sent} bytes"
            );
        }
        // Three bytes cannot tell yet.
        let mut dec = Decoder::new(100);
        dec.feed(&[0xff, 0xff, 0xff]);
        assert_eq!(dec.next_frame(), Ok(None));
    }

    #[test]
    fn bad_kind_flags_seq_and_control_are_errors() {
        let mut enc = Encoder::new();
        let good = enc.frame(Kind::Ping, 0, &[]);
        for (i, v) in [(4usize, 9u8), (5, 1), (7, 1)] {
            let mut f = good.clone();
            f[i] = v;
            let mut dec = Decoder::new(100);
            dec.feed(&f);
            assert!(dec.next_frame().is_err(), "byte {i}");
        }
        // A numbered frame from the future, a numbered heartbeat, an unnumbered data frame.
        let mut enc = Encoder::new();
        enc.frame(Kind::Control, 0, &[&[0, 0, 0, 0]]);
        for f in [
            enc.frame(Kind::Control, 0, &[&[0, 0, 0, 0]]),
            header_at(Kind::Ping, 1, 0, 0).to_vec(),
            header_at(Kind::Data, 0, 0, 8)
                .iter()
                .chain(&[0; 8])
                .copied()
                .collect(),
        ] {
            let mut dec = Decoder::new(100);
            dec.feed(&f);
            assert!(
                matches!(dec.next_frame(), Err(FrameError::BadSeq { .. })),
                "{f:?}"
            );
        }
        let mut enc = Encoder::new();
        let mut dec = Decoder::new(100);
        dec.feed(&enc.frame(Kind::Control, 0, &[&[0, 0, 0, 9], b"{}"]));
        assert_eq!(dec.next_frame(), Err(FrameError::BadControl));
    }

    #[test]
    fn reading_into_spare_room_and_big_frames() {
        let mut enc = Encoder::new();
        let big = vec![7u8; 1024 * 1024];
        let mut wire = enc.frame(Kind::Data, 0, &[&1u64.to_be_bytes(), &big]);
        wire.extend(enc.frame(Kind::Ping, 0, &[]));
        let mut dec = Decoder::new(2 << 20);
        let mut rest = &wire[..];
        let mut got = Vec::new();
        while !rest.is_empty() {
            let room = dec.spare();
            assert!(room.len() >= READ_MIN);
            let n = room.len().min(rest.len()).min(50_000);
            room[..n].copy_from_slice(&rest[..n]);
            dec.filled(n);
            rest = &rest[n..];
            while let Some(f) = dec.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(&got[0].payload[8..], &big[..]);
        assert_eq!(dec.buffered(), 0);
        dec.spare();
        assert!(
            dec.buf.len() <= 256 * 1024,
            "memory of the big frame given back"
        );
        // A small read after the burst: back to the idle size.
        dec.feed(&enc.frame(Kind::Ping, 0, &[]));
        assert!(dec.next_frame().unwrap().is_some());
        dec.spare();
        assert!(
            dec.capacity() <= 2 * READ_MIN,
            "idle again: {}",
            dec.capacity()
        );
    }

    #[test]
    fn memory_follows_traffic() {
        let mut enc = Encoder::new();
        let mut dec = Decoder::new(1 << 20);
        dec.spare();
        assert_eq!(
            dec.capacity(),
            READ_MIN,
            "an idle decoder keeps a small buffer"
        );
        // Reads that fill the room double it, up to READ_MAX.
        let mut wire = Vec::new();
        while wire.len() < 4 * READ_MAX {
            wire.extend(enc.control(0, br#"{"t":"x"}"#, &[0; 100]));
        }
        let mut rest = &wire[..];
        let mut rooms = Vec::new();
        while !rest.is_empty() {
            let room = dec.spare();
            rooms.push(room.len());
            let n = room.len().min(rest.len());
            room[..n].copy_from_slice(&rest[..n]);
            dec.filled(n);
            rest = &rest[n..];
            while dec.next_frame().unwrap().is_some() {}
        }
        assert!(rooms.iter().any(|&r| r >= READ_MAX), "{rooms:?}");
        assert!(rooms.iter().all(|&r| r <= 2 * READ_MAX), "{rooms:?}");
        // The next small read ends the burst and the buffer shrinks back.
        dec.feed(&enc.frame(Kind::Ping, 0, &[]));
        assert!(dec.next_frame().unwrap().is_some());
        dec.spare();
        assert!(dec.capacity() <= 2 * READ_MIN, "{}", dec.capacity());
        // A known frame gets room for its rest in one read (up to READ_MAX)...
        let big = enc.frame(Kind::Data, 0, &[&[0u8; 8], &[1u8; 20_000]]);
        dec.feed(&big[..HEADER_LEN]);
        assert!(dec.spare().len() >= 20_008);
        // ...but an oversized header gets none before it is refused.
        let mut dec = Decoder::new(100);
        let mut h = [0u8; HEADER_LEN];
        h[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        h[4] = 1;
        dec.feed(&h);
        assert!(dec.spare().len() < 1024);
        assert!(dec.capacity() < 1024);
        assert!(dec.next_frame().is_err());
    }

    #[test]
    fn every_truncation_waits_for_more() {
        let mut enc = Encoder::new();
        let wire = enc.control(0, b"{\"a\":1}", b"xyz");
        for cut in 0..wire.len() {
            let mut dec = Decoder::new(1024);
            dec.feed(&wire[..cut]);
            assert_eq!(dec.next_frame(), Ok(None), "cut at {cut}");
            dec.feed(&wire[cut..]);
            assert!(dec.next_frame().unwrap().is_some());
        }
    }
}
