//! The session's side of streams: acknowledgements that follow the sender's chunks, a window
//! that starts small and grows with the measured path, a `data_end` that overtakes chunks.

use super::*;

impl Server {
    /// A data frame of stream `sid`.
    fn data(&mut self, s: &mut Session, sid: u64, bytes: &[u8], now: Instant) {
        let frame = self.enc.frame(
            Kind::Data,
            self.dec.last_seq(),
            &[&sid.to_be_bytes(), bytes],
        );
        let mut rest = &frame[..];
        while !rest.is_empty() {
            let room = s.read_buf();
            let n = room.len().min(rest.len());
            room[..n].copy_from_slice(&rest[..n]);
            s.received(n, now);
            rest = &rest[n..];
        }
    }

    /// `s` sends bob a buffer of `size` bytes, which the server offers as stream `sid` and
    /// starts at once.
    fn started_buffer(&mut self, s: &mut Session, size: usize, sid: u64, now: Instant) {
        let _task = s.send_buffer("bob", vec![3; size], now).unwrap();
        let (sent, _) = self.take_all(s, now);
        let ClientMsg::Req { id, .. } = sent[0] else {
            panic!("{sent:?}")
        };
        let offer = ServerMsg::Res {
            re: id,
            result: Outcome::Offer { sid },
        };
        self.send(s, &offer, now);
        self.send(s, &ServerMsg::Start { sid }, now);
    }

    /// bob sends `s` a buffer of `bytes` as stream `sid`: its `incoming`. Returns the checksum
    /// its `data_end` carries.
    fn incoming_buffer(&mut self, s: &mut Session, sid: u64, bytes: &[u8], now: Instant) -> String {
        let incoming = ServerMsg::Incoming {
            sid,
            task: "t".into(),
            from: "bob".into(),
            kind: XferKind::Buffer,
            size: bytes.len() as u64,
            name: String::new(),
        };
        self.send(s, &incoming, now);
        crvm_proto::msg::checksum_hex(xxhash_rust::xxh3::xxh3_128(bytes))
    }

    /// `s` finished stream `sid` (its `fin`, 0) and its app got `bytes`.
    fn buffer_delivered(&mut self, s: &mut Session, sid: u64, bytes: &[u8], now: Instant) {
        let sent = self.take(s, now);
        assert!(sent.contains(&ClientMsg::Fin { sid, code: 0 }), "{sent:?}");
        let evs = events(s);
        assert!(
            evs.iter()
                .any(|e| matches!(e, Event::NotifyBufferData { data, .. } if *data == bytes)),
            "{evs:?}"
        );
    }

    /// Everything the session has to send: its messages, and the data bytes of each stream.
    fn take_all(&mut self, s: &mut Session, now: Instant) -> (Vec<ClientMsg>, Vec<(u64, usize)>) {
        let mut wire = Batch::new();
        while s.transmit(&mut wire, now) {}
        self.dec.feed(&flat(&wire));
        let (mut msgs, mut data) = (Vec::new(), Vec::new());
        while let Some(f) = self.dec.next_frame().unwrap() {
            match f.kind {
                Kind::Control => msgs.push(serde_json::from_slice(f.control().unwrap().0).unwrap()),
                Kind::Data => {
                    let sid = u64::from_be_bytes(f.payload[..8].try_into().unwrap());
                    data.push((sid, f.payload.len() - 8));
                }
                _ => {}
            }
        }
        (msgs, data)
    }
}

#[test]
fn a_receiver_acknowledges_every_two_chunks_of_the_senders_size() {
    let t0 = Instant::now();
    let (mut s, mut srv) = logged_in(t0);
    let incoming = ServerMsg::Incoming {
        sid: 7,
        task: "t".into(),
        from: "bob".into(),
        kind: XferKind::Buffer,
        size: 100_000,
        name: String::new(),
    };
    srv.send(&mut s, &incoming, t0);
    let acks = |msgs: Vec<ClientMsg>| -> Vec<u64> {
        msgs.into_iter()
            .filter_map(|m| match m {
                ClientMsg::Ack { sid: 7, bytes } => Some(bytes),
                _ => None,
            })
            .collect()
    };
    let chunk = [5u8; 16_384];
    srv.data(&mut s, 7, &chunk, t0);
    assert!(acks(srv.take(&mut s, t0)).is_empty(), "one chunk: not yet");
    srv.data(&mut s, 7, &chunk, t0);
    assert_eq!(acks(srv.take(&mut s, t0)), [32_768], "two chunks");
    // Smaller chunks: acknowledged every two of those.
    srv.data(&mut s, 7, &chunk[..1000], t0);
    srv.data(&mut s, 7, &chunk[..1000], t0);
    assert_eq!(acks(srv.take(&mut s, t0)), [34_768]);
}

#[test]
fn a_sender_starts_with_a_small_window_that_grows_with_the_measured_path() {
    let t0 = Instant::now();
    let (mut s, mut srv) = logged_in(t0);
    let size = 1 << 20;
    srv.started_buffer(&mut s, size, 9, t0);
    let (_, data) = srv.take_all(&mut s, t0);
    let first: usize = data.iter().map(|d| d.1).sum();
    assert!(
        (4 * 16_384..=256 * 1024).contains(&first),
        "before any measurement, a small window: {first}"
    );
    // A fast path: every window acknowledged 1 ms after it went out. The window and the
    // chunks grow with what the path carries.
    let (mut now, mut acked, mut last) = (t0, 0, first);
    let (mut widest, mut largest) = (0, 0);
    while acked + last < size {
        now += Duration::from_millis(1);
        acked += last;
        let bytes = acked as u64;
        srv.send(&mut s, &ServerMsg::Progress { sid: 9, bytes }, now);
        let (_, data) = srv.take_all(&mut s, now);
        last = data.iter().map(|d| d.1).sum();
        widest = widest.max(last);
        largest = largest.max(data.iter().map(|d| d.1).max().unwrap_or(0));
    }
    assert_eq!(largest, xfer::CHUNK, "full chunks on a fast path");
    assert!(
        widest >= 4 * first,
        "the window grew: {widest} from {first}"
    );
}

#[test]
fn a_data_end_that_overtakes_the_last_chunks_waits_for_them() {
    // The server's out-queue lets control frames (data_end) overtake queued chunks; the
    // receiver checks the checksum once every byte is in, whatever came first.
    let t0 = Instant::now();
    let (mut s, mut srv) = logged_in(t0);
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let hash = srv.incoming_buffer(&mut s, 3, &bytes, t0);
    srv.data(&mut s, 3, &bytes[..20_000], t0);
    srv.send(&mut s, &ServerMsg::DataEnd { sid: 3, hash }, t0);
    let fin = |msgs: &[ClientMsg]| {
        msgs.iter()
            .any(|m| matches!(m, ClientMsg::Fin { sid: 3, .. }))
    };
    assert!(!fin(&srv.take(&mut s, t0)), "not before the last bytes");
    srv.data(&mut s, 3, &bytes[20_000..], t0);
    srv.buffer_delivered(&mut s, 3, &bytes, t0);
}

#[test]
fn chunks_read_into_buffers_of_their_own_arrive_whole_and_in_order() {
    // Chunks of 16 to 256 KiB are read into buffers of their own once their header is in
    // (the test's reads follow the room the session offers: the header comes first); smaller
    // ones stay in the shared buffer. Either way the bytes arrive as sent, checksum and all.
    let t0 = Instant::now();
    let (mut s, mut srv) = logged_in(t0);
    let sizes = [20_000, 100_000, 16_383, 131_072, 16_384];
    let bytes: Vec<u8> = (0..sizes.iter().sum::<usize>())
        .map(|i| (i * 13 % 251) as u8)
        .collect();
    let hash = srv.incoming_buffer(&mut s, 9, &bytes, t0);
    let mut at = 0;
    for n in sizes {
        srv.data(&mut s, 9, &bytes[at..at + n], t0);
        at += n;
    }
    srv.send(&mut s, &ServerMsg::DataEnd { sid: 9, hash }, t0);
    srv.buffer_delivered(&mut s, 9, &bytes, t0);
}

#[test]
fn what_an_app_thread_writes_after_its_call_is_control_only() {
    // A stream with room in its window: the worker's `transmit` writes its chunks; what the
    // app's thread writes after a call (`transmit_control`) is that call's frame and no chunk.
    let t0 = Instant::now();
    let (mut s, mut srv) = logged_in(t0);
    srv.started_buffer(&mut s, 1 << 20, 9, t0);
    s.request(Op::SetDnd { dnd: 1 }, "", t0).unwrap();
    let mut wire = Batch::new();
    while s.transmit_control(&mut wire, t0) {}
    srv.dec.feed(&flat(&wire));
    let mut kinds = Vec::new();
    while let Some(f) = srv.dec.next_frame().unwrap() {
        kinds.push(f.kind);
    }
    assert!(kinds.contains(&Kind::Control), "{kinds:?}");
    assert!(
        !kinds.contains(&Kind::Data),
        "no chunk from the app's thread: {kinds:?}"
    );
    // The worker then writes the chunks.
    let (_, data) = srv.take_all(&mut s, t0);
    assert!(!data.is_empty());
}

#[test]
fn a_chunk_is_written_in_place_from_a_buffer_that_comes_back_once_acknowledged() {
    let t0 = Instant::now();
    let (mut s, mut srv) = logged_in(t0);
    srv.started_buffer(&mut s, 1 << 20, 9, t0);
    // The worker's steps for one chunk: transmit, write (the server reads it), written.
    let mut wire = Batch::new();
    let mut write_chunk = |s: &mut Session, srv: &mut Server| -> usize {
        assert!(s.transmit(&mut wire, t0));
        let at = {
            let parts = wire.slices(0);
            assert_eq!(parts.len(), 2, "the header, then the payload in place");
            assert_eq!(
                parts[1][..8],
                9u64.to_be_bytes(),
                "the payload starts with the sid"
            );
            parts[1].as_ptr() as usize
        };
        srv.dec.feed(&flat(&wire));
        while srv.dec.next_frame().unwrap().is_some() {}
        s.written(&mut wire, 0);
        at
    };
    let mut written = [write_chunk(&mut s, &mut srv), write_chunk(&mut s, &mut srv)];
    // Written but not acknowledged: the resume tail holds them, none is spare yet.
    assert!(s.st.out.take_spare().is_empty());
    // The server's next frame acknowledges both: their buffers are the next chunks'.
    srv.send(&mut s, &ServerMsg::Progress { sid: 9, bytes: 0 }, t0);
    let mut spare: Vec<usize> = (s.st.out.take_spare().iter())
        .map(|b| b.as_ptr() as usize)
        .collect();
    spare.sort_unstable();
    written.sort_unstable();
    assert_eq!(spare, written);
}
