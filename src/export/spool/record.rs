//! The byte formats of the spool: records in segment files, entries in
//! acknowledgement files.
//!
//! A record is `[payload length u32 LE][crc32 of payload u32 LE][crc32 of
//! those 8 bytes u32 LE][payload]`, the payload `[key length u8][idempotency
//! key][body]`. Reading never trusts a length: a record counts only when its
//! header checks out, its payload fits in the file, the payload's checksum
//! matches and its key is text. After a bad record the reader
//! resynchronises on the next offset where such a record starts (the header
//! checksum makes trying an offset cheap), so one torn write, flipped bit or
//! bad length costs only the bytes it damaged; those are reported as
//! unreadable regions.
//!
//! An acknowledgement entry is `[record index u32 LE][that record's crc u32
//! LE]`: an entry names the record it acknowledges by index *and* checksum,
//! so a garbage or misplaced `.ack` file cannot mark other records as sent
//! (it is reported, and those records are sent again: the idempotency key
//! makes that harmless).

use std::ops::Range;

/// Largest record payload accepted when reading (a corrupt length beyond
/// this is a bad record, never an allocation).
pub const MAX_RECORD: usize = 64 * 1024 * 1024;
pub const HEADER: usize = 12;
pub const ACK_ENTRY: usize = 8;

/// Encode one record (header + payload).
pub fn encode(key: &str, body: &[u8]) -> Vec<u8> {
    let key = &key.as_bytes()[..key.len().min(255)];
    let payload_len = 1 + key.len() + body.len();
    let mut out = Vec::with_capacity(HEADER + payload_len);
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.push(key.len() as u8);
    out.extend_from_slice(key);
    out.extend_from_slice(body);
    let crc = crc32fast::hash(&out[HEADER..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    let head_crc = crc32fast::hash(&out[..8]);
    out[8..12].copy_from_slice(&head_crc.to_le_bytes());
    out
}

/// Where one intact record sits in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Offset of its header.
    pub offset: u64,
    /// Payload length.
    pub len: u32,
    /// Its checksum (what acknowledgement entries name it by).
    pub crc: u32,
}

impl Span {
    /// The byte range of the whole record (header + payload).
    pub fn range(&self) -> Range<usize> {
        let start = self.offset as usize;
        start..start + HEADER + self.len as usize
    }
}

/// What reading a segment found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    pub records: Vec<Span>,
    /// Damaged byte ranges (each held at least part of one record).
    pub unreadable: Vec<Range<usize>>,
}

impl Scan {
    pub fn unreadable_bytes(&self) -> usize {
        self.unreadable.iter().map(|r| r.len()).sum()
    }
}

/// An intact record at `pos`: its payload length and checksum.
fn record_at(data: &[u8], pos: usize) -> Option<(u32, u32)> {
    let head = data.get(pos..pos + HEADER)?;
    let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    if crc32fast::hash(&head[..8]) != word(8) {
        return None;
    }
    let (len, crc) = (word(0), word(4));
    if len == 0 || len as usize > MAX_RECORD {
        return None;
    }
    let payload = data.get(pos + HEADER..pos + HEADER + len as usize)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let key_len = payload[0] as usize;
    std::str::from_utf8(payload.get(1..1 + key_len)?).ok()?;
    Some((len, crc))
}

/// Index every intact record of a segment, skipping damaged bytes.
pub fn scan(data: &[u8]) -> Scan {
    let mut out = Scan::default();
    let mut pos = 0usize;
    let mut bad_from: Option<usize> = None;
    while pos < data.len() {
        match record_at(data, pos) {
            Some((len, crc)) => {
                if let Some(start) = bad_from.take() {
                    out.unreadable.push(start..pos);
                }
                out.records.push(Span {
                    offset: pos as u64,
                    len,
                    crc,
                });
                pos += HEADER + len as usize;
            }
            None => {
                bad_from.get_or_insert(pos);
                pos += 1;
            }
        }
    }
    if let Some(start) = bad_from {
        out.unreadable.push(start..data.len());
    }
    out
}

/// The key and body of the record at `span` (checked again: the file may
/// have changed since it was indexed). `None`: no longer intact.
pub fn read<'a>(data: &'a [u8], span: &Span) -> Option<(&'a str, &'a [u8])> {
    let (len, crc) = record_at(data, span.offset as usize)?;
    if len != span.len || crc != span.crc {
        return None;
    }
    let payload = &data[span.range()][HEADER..];
    let key_len = payload[0] as usize;
    let key = std::str::from_utf8(&payload[1..1 + key_len]).ok()?;
    Some((key, &payload[1 + key_len..]))
}

pub fn ack_entry(index: u32, crc: u32) -> [u8; ACK_ENTRY] {
    let mut e = [0u8; ACK_ENTRY];
    e[..4].copy_from_slice(&index.to_le_bytes());
    e[4..].copy_from_slice(&crc.to_le_bytes());
    e
}

/// What an acknowledgement file says about a segment's `records`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Acks {
    /// Indexes of acknowledged records.
    pub acked: Vec<u32>,
    /// Entries that name no record of the segment (ignored).
    pub garbage: usize,
    /// Bytes after the last whole entry (a torn append).
    pub torn: usize,
}

pub fn decode_acks(data: &[u8], records: &[Span]) -> Acks {
    let mut out = Acks {
        torn: data.len() % ACK_ENTRY,
        ..Acks::default()
    };
    for e in data.chunks_exact(ACK_ENTRY) {
        let index = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
        let crc = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        match records.get(index as usize) {
            Some(r) if r.crc == crc => out.acked.push(index),
            _ => out.garbage += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(data: &[u8], s: &Scan) -> Vec<String> {
        s.records
            .iter()
            .map(|r| read(data, r).unwrap().0.to_owned())
            .collect()
    }

    fn segment(n: usize) -> (Vec<u8>, Vec<Range<usize>>) {
        let mut data = Vec::new();
        let mut ranges = Vec::new();
        for i in 0..n {
            let rec = encode(&format!("k{i}"), format!("{{\"name\":\"r{i}\"}}").as_bytes());
            ranges.push(data.len()..data.len() + rec.len());
            data.extend(rec);
        }
        (data, ranges)
    }

    #[test]
    fn roundtrip() {
        let mut data = encode("k1", b"{\"a\":1}");
        data.extend(encode("k2", b""));
        let s = scan(&data);
        assert!(s.unreadable.is_empty());
        assert_eq!(keys(&data, &s), ["k1", "k2"]);
        assert_eq!(read(&data, &s.records[0]).unwrap().1, b"{\"a\":1}");
        assert_eq!(read(&data, &s.records[1]).unwrap().1, b"");
    }

    #[test]
    fn a_flipped_bit_costs_one_record() {
        let (mut data, ranges) = segment(5);
        data[ranges[1].start + HEADER + 3] ^= 0x10;
        let s = scan(&data);
        assert_eq!(keys(&data, &s), ["k0", "k2", "k3", "k4"]);
        assert_eq!(s.unreadable, vec![ranges[1].clone()]);
    }

    #[test]
    fn a_bad_length_costs_one_record() {
        for bad in [0u32, 3, 0x7fff_ffff, 1 << 20] {
            let (mut data, ranges) = segment(4);
            data[ranges[2].start..ranges[2].start + 4].copy_from_slice(&bad.to_le_bytes());
            let s = scan(&data);
            assert_eq!(keys(&data, &s), ["k0", "k1", "k3"], "length {bad}");
            assert_eq!(s.unreadable, vec![ranges[2].clone()]);
        }
    }

    #[test]
    fn torn_writes_and_truncation() {
        // A torn record in the middle (a crashed append, then more appends).
        let (data, ranges) = segment(3);
        let mut torn = data[..ranges[1].start + 5].to_vec();
        let tail = data[ranges[2].clone()].to_vec();
        torn.extend_from_slice(&tail);
        let s = scan(&torn);
        assert_eq!(keys(&torn, &s), ["k0", "k2"]);
        assert_eq!(s.unreadable_bytes(), 5);
        // A truncated file: the last record is gone, the others are not.
        let cut = &data[..data.len() - 2];
        let s = scan(cut);
        assert_eq!(keys(cut, &s), ["k0", "k1"]);
        assert_eq!(s.unreadable, vec![ranges[2].start..cut.len()]);
        // Garbage or zeros in front of intact records.
        let mut junk = vec![0u8; 100];
        junk.extend_from_slice(&[0xff; 50]);
        junk.extend_from_slice(&data);
        let s = scan(&junk);
        assert_eq!(keys(&junk, &s), ["k0", "k1", "k2"]);
        assert_eq!(s.unreadable, vec![0..150]);
        assert_eq!(scan(&[1, 2, 3]).unreadable, vec![0..3]);
        assert!(scan(&[]).records.is_empty());
    }

    #[test]
    fn read_rechecks_the_record() {
        let (mut data, ranges) = segment(2);
        let s = scan(&data);
        data[ranges[1].end - 1] ^= 1;
        assert!(read(&data, &s.records[0]).is_some());
        assert!(read(&data, &s.records[1]).is_none());
        assert!(read(&data[..10], &s.records[1]).is_none());
    }

    #[test]
    fn acks_name_their_record() {
        let (data, _) = segment(3);
        let s = scan(&data);
        let mut acks = Vec::new();
        acks.extend(ack_entry(0, s.records[0].crc));
        acks.extend(ack_entry(2, s.records[2].crc));
        acks.extend(ack_entry(1, s.records[0].crc)); // wrong record
        acks.extend(ack_entry(7, s.records[0].crc)); // no such record
        acks.extend([0xff, 0xff, 0x01]); // torn
        let a = decode_acks(&acks, &s.records);
        assert_eq!(a.acked, vec![0, 2]);
        assert_eq!(a.garbage, 2);
        assert_eq!(a.torn, 3);
        // Pure garbage acknowledges nothing.
        let junk: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
        let a = decode_acks(&junk, &s.records);
        assert!(a.acked.is_empty());
        assert_eq!(a.garbage, 512);
        let a = decode_acks(&[0; 64], &s.records);
        assert!(a.acked.is_empty());
    }
}
