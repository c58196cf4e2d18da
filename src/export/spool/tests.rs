use super::*;
use std::fs::OpenOptions;

const URL: &str = "http://127.0.0.1:9/api/v1";

fn tmp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "infinium-spool-test-{name}-{}-{}",
        std::process::id(),
        fastrand::u32(..)
    ));
    let _ = fs::remove_dir_all(&p);
    p
}

fn open(root: &Path, per_segment: u32) -> Spool {
    Spool::new(root, "agent", URL, per_segment, 1 << 30)
}

/// A claim that numbers records from 1000 up.
fn claim(s: &mut Spool) -> Events {
    let mut next = 1000;
    s.claim(&mut |n| {
        next += n;
        next - n
    });
    s.take_events()
}

/// Read back and acknowledge everything; the keys, in order.
fn drain(s: &mut Spool) -> Vec<String> {
    let mut keys = Vec::new();
    while let Some(batch) = s.next_replay(10) {
        for (r, rec) in batch {
            keys.push(rec.key);
            s.ack(r).unwrap();
        }
    }
    keys
}

fn segments_of(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    v.sort();
    v
}

#[test]
fn nothing_touches_the_disk_until_written() {
    let root = tmp("lazy");
    let mut s = open(&root, 4);
    assert!(claim(&mut s).warnings.is_empty());
    assert_eq!(s.backlog(), 0);
    s.close();
    assert!(!root.exists());
}

#[test]
fn append_ack_collect_and_claim() {
    let root = tmp("claim");
    let mut a = open(&root, 2);
    let r0 = a.append("k0", b"b0", 0, false).unwrap();
    let r1 = a.append("k1", b"b1", 1, true).unwrap();
    let _r2 = a.append("k2", b"b2", 2, false).unwrap();
    assert_eq!(r0.seg, r1.seg);
    assert_eq!(a.backlog(), 3);
    a.ack(r1).unwrap();
    assert_eq!(a.backlog(), 2);
    // Another exporter of the target cannot claim while `a` lives.
    let mut b = open(&root, 2);
    claim(&mut b);
    assert_eq!(b.backlog(), 0);
    a.close();
    drop(a);
    // Now it can; the acknowledged record is not read back, the others
    // get the claimer's sequence numbers.
    let ev = claim(&mut b);
    assert_eq!(ev.claimed, 2);
    assert_eq!(b.backlog(), 2);
    let batch = b.next_replay(10).unwrap();
    let seqs: Vec<u64> = batch.iter().map(|(_, r)| r.seq).collect();
    assert_eq!(seqs, [1000]);
    for (r, _) in batch {
        b.ack(r).unwrap();
    }
    assert_eq!(drain(&mut b), ["k2"]);
    assert_eq!(b.backlog(), 0);
    // A third exporter finds nothing left to claim.
    let mut c = open(&root, 2);
    assert_eq!(claim(&mut c).claimed, 0);
    b.close();
    c.close();
    // Only the target folder and its target.json are left.
    let target = fs::read_dir(&root).unwrap().flatten().next().unwrap().path();
    let names: Vec<String> = fs::read_dir(&target)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [layout::TARGET_FILE]);
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn other_agents_and_base_urls_are_left_alone() {
    let root = tmp("targets");
    let mut a = Spool::new(&root, "one", URL, 8, 1 << 30);
    a.append("k", b"b", 0, false).unwrap();
    a.close();
    let mut b = Spool::new(&root, "two", URL, 8, 1 << 30);
    assert_eq!(claim(&mut b).claimed, 0);
    let mut c = Spool::new(&root, "one", "https://staging.example.com/v1", 8, 1 << 30);
    assert_eq!(claim(&mut c).claimed, 0);
    let mut d = Spool::new(&root, "one", URL, 8, 1 << 30);
    assert_eq!(claim(&mut d).claimed, 1);
    let targets = layout::targets(&root);
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].1.agent_id, "one");
    assert_eq!(targets[0].1.base_url, URL);
    for mut s in [b, c, d] {
        s.close();
    }
    let _ = fs::remove_dir_all(&root);
}

/// Write `n` records with one spool, close it, return the segment path.
fn orphan_segment(root: &Path, n: usize) -> PathBuf {
    let mut a = open(root, 1000);
    for i in 0..n {
        a.append(
            &format!("k{i}"),
            format!("{{\"i\":{i}}}").as_bytes(),
            i as u64,
            false,
        )
        .unwrap();
    }
    let dir = a.own_dir().unwrap().to_owned();
    a.close();
    segments_of(&dir).remove(0)
}

#[test]
fn a_damaged_record_costs_only_itself() {
    let root = tmp("damaged");
    let seg = orphan_segment(&root, 10);
    let mut data = fs::read(&seg).unwrap();
    let spans = record::scan(&data).records;
    data[spans[3].offset as usize + record::HEADER + 2] ^= 0x04; // a flipped bit
    data[spans[6].offset as usize..spans[6].offset as usize + 4].copy_from_slice(&u32::MAX.to_le_bytes()); // a bad length
    fs::write(&seg, &data).unwrap();
    let mut b = open(&root, 1000);
    let ev = claim(&mut b);
    assert_eq!(ev.unreadable, 2);
    assert_eq!(ev.claimed, 8);
    assert!(
        ev.warnings.iter().any(|w| w.contains("2 damaged region(s)")),
        "{:?}",
        ev.warnings
    );
    let keys = drain(&mut b);
    assert_eq!(keys, ["k0", "k1", "k2", "k4", "k5", "k7", "k8", "k9"]);
    b.close();
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn a_torn_tail_and_a_truncated_segment() {
    let root = tmp("torn");
    let seg = orphan_segment(&root, 3);
    let mut data = fs::read(&seg).unwrap();
    data.truncate(data.len() - 3);
    fs::write(&seg, &data).unwrap();
    let mut b = open(&root, 1000);
    let ev = claim(&mut b);
    assert_eq!((ev.claimed, ev.unreadable), (2, 1));
    assert_eq!(drain(&mut b), ["k0", "k1"]);
    b.close();
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn a_garbage_ack_file_skips_nothing() {
    let root = tmp("ack");
    let seg = orphan_segment(&root, 4);
    let ack = layout::ack_path(&seg);
    let junk: Vec<u8> = (0..203u32).map(|i| (i * 31 % 256) as u8).collect();
    fs::write(&ack, &junk).unwrap();
    let mut b = open(&root, 1000);
    let ev = claim(&mut b);
    assert_eq!(ev.claimed, 4);
    assert!(
        ev.warnings.iter().any(|w| w.contains("name no record")),
        "{:?}",
        ev.warnings
    );
    assert_eq!(drain(&mut b), ["k0", "k1", "k2", "k3"]);
    b.close();
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn a_torn_ack_is_cut_and_later_acks_still_count() {
    let root = tmp("tornack");
    let mut a = open(&root, 1000);
    let refs: Vec<SpoolRef> = (0..4)
        .map(|i| a.append(&format!("k{i}"), b"{}", i, true).unwrap())
        .collect();
    a.ack(refs[0]).unwrap();
    let dir = a.own_dir().unwrap().to_owned();
    let ack = layout::ack_path(&segments_of(&dir)[0]);
    // Simulate death (no close): forget the spool, free the lock.
    drop(a);
    let mut f = OpenOptions::new().append(true).open(&ack).unwrap();
    f.write_all(&[1, 0, 0]).unwrap(); // a torn entry
    drop(f);
    let mut b = open(&root, 1000);
    assert_eq!(claim(&mut b).claimed, 3);
    let batch = b.next_replay(1).unwrap();
    b.ack(batch[0].0).unwrap();
    b.close();
    let mut c = open(&root, 1000);
    assert_eq!(claim(&mut c).claimed, 2);
    assert_eq!(drain(&mut c), ["k2", "k3"]);
    c.close();
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn over_max_bytes_the_oldest_are_dropped() {
    let root = tmp("max");
    let body = [b'x'; 200];
    let rec = record::encode("k", &body).len() as u64;
    // Room for 10 records; segments of 4096 bytes (about 18 records).
    let mut s = Spool::new(&root, "agent", URL, 3, rec * 10);
    for i in 0..30u64 {
        s.append(&format!("k{i}"), &body, i, false).unwrap();
        assert!(s.bytes <= rec * 10);
    }
    let ev = s.take_events();
    assert_eq!(ev.dropped.len(), 21);
    assert_eq!(ev.dropped[..3], [0, 1, 2]);
    assert!(ev.warnings.iter().any(|w| w.contains("max_spool_bytes")));
    assert_eq!(s.backlog(), 9);
    // A record larger than the whole spool is refused, nothing dropped.
    assert!(s.append("big", &[0u8; 4000], 99, false).is_err());
    assert!(s.take_events().dropped.is_empty());
    s.close();
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn a_released_record_whose_segment_was_dropped_says_so() {
    let root = tmp("release");
    let rec = record::encode("k0", b"{}").len() as u64;
    let mut s = Spool::new(&root, "agent", URL, 1, rec * 2);
    let r0 = s.append("k0", b"{}", 0, true).unwrap();
    s.append("k1", b"{}", 1, false).unwrap();
    s.append("k2", b"{}", 2, false).unwrap(); // drops segment 0
    assert!(!s.release(r0));
    // r0's trace is in memory: nothing was dropped.
    let ev = s.take_events();
    assert!(ev.dropped.is_empty(), "{ev:?}");
    s.close();
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn a_deleted_directory_is_noticed_and_recreated() {
    let root = tmp("deleted");
    let mut s = open(&root, 2);
    s.append("k0", b"{}", 0, false).unwrap();
    s.append("k1", b"{}", 1, true).unwrap();
    s.append("k2", b"{}", 2, false).unwrap();
    assert!(!s.check_dir());
    fs::remove_dir_all(&root).unwrap();
    assert!(s.check_dir());
    let ev = s.take_events();
    assert_eq!(ev.dropped, [0, 2]);
    assert!(ev.warnings[0].contains("was deleted"));
    assert_eq!(s.backlog(), 0);
    s.append("k1", b"{}", 1, true).unwrap();
    assert!(s.own_dir().unwrap().exists());
    assert!(root
        .join(s.target_dir().file_name().unwrap())
        .join(layout::TARGET_FILE)
        .exists());
    s.close();
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn concurrent_claimers_take_each_record_once() {
    let root = tmp("race");
    for _ in 0..6 {
        orphan_segment(&root, 50);
    }
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let root = root.clone();
            std::thread::spawn(move || {
                let mut s = open(&root, 1000);
                claim(&mut s);
                let keys = drain(&mut s);
                s.close();
                keys.len()
            })
        })
        .collect();
    let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, 300);
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn retarget_moves_a_backlog_to_another_base_url() {
    let root = tmp("retarget");
    orphan_segment(&root, 3);
    let src = layout::targets(&root)[0].0.clone();
    let moved = retarget(&src, &root, "agent", "http://fixed.example/v1").unwrap();
    assert_eq!(moved, 1);
    let mut old = open(&root, 10);
    assert_eq!(claim(&mut old).claimed, 0);
    let mut new = Spool::new(&root, "agent", "http://fixed.example/v1", 10, 1 << 30);
    assert_eq!(claim(&mut new).claimed, 3);
    old.close();
    new.close();
    let _ = fs::remove_dir_all(&root);
}

#[test]
fn acks_between_appends_do_not_shift_records() {
    let root = tmp("interleave");
    let mut s = open(&root, 100);
    let mut keys = Vec::new();
    for i in 0..6u64 {
        let r = s.append(&format!("k{i}"), b"{}", i, true).unwrap();
        if i % 2 == 0 {
            s.ack(r).unwrap();
        } else {
            assert!(s.release(r));
            keys.push(format!("k{i}"));
        }
    }
    for seg in s.segments.values_mut() {
        seg.not_before = Instant::now();
    }
    assert_eq!(drain(&mut s), keys);
    assert!(s.take_events().dropped.is_empty());
    s.close();
    let _ = fs::remove_dir_all(&root);
}
