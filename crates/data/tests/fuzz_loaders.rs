//! Every data loader fuzzed from memory: KuaiRec, KuaiRand-Pure and Coat, each through its fail-fast `load`
//! and the collect-mode `validate` of `dsrm data validate`, on generated variants of a small valid data set
//! (bytes flipped, inserted, deleted, truncated; fields replaced by edge values; lines repeated or swapped;
//! files removed). Each variant must be answered with the data or with an error that names where it is, never
//! a panic, and `load` must fail exactly when `validate` reports a problem (the two share one reader).
//!
//! The files never touch a disk (`dsrm_data::source::Memory`), so a case takes tens of microseconds. The short
//! version runs with the tests; the long one, 10^6 cases per data set, is
//! `PROPTEST_CASES=1000000 cargo test --release -p dsrm-data --test fuzz_loaders` (docs/data.md).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dsrm_data::source::{Memory, Source};
use dsrm_data::{coat, kuairand, kuairec, validate_from, Dataset, USER_FEATURES_HEADER};
use proptest::prelude::*;

/// Where the in-memory data sets live; every error must name a path below it.
const ROOT: &str = "/fuzz";

/// Values that break parsers: empty, signs, overflow, non-finite and malformed numbers, quotes, brackets,
/// a byte-order mark, a bare carriage return, non-UTF-8 bytes, dates out of range.
const TOKENS: &[&[u8]] = &[
    b"",
    b"-1",
    b"0",
    b"-0",
    b"1.5",
    b"4294967296",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"1e309",
    b"NaN",
    b"inf",
    b"-inf",
    b"\"",
    b"\"\"",
    b"[",
    b"[1,",
    b"[]",
    b"[-1]",
    b"\xef\xbb\xbf",
    b"\r",
    b"\xff\xfe",
    b"2022-13-45 25:61:61.000",
    b"20221345",
    b"99999999999999999999999",
    b"a:b:c",
    b" ",
];

/// One small valid copy of each data set, in the official formats.
fn seed(dataset: Dataset) -> Memory {
    let dir = Path::new(ROOT).join(dataset.name());
    let mut m = Memory::new();
    let user_row = |id: usize| {
        let rest = if id.is_multiple_of(2) {
            "full_active,0,1,1,514,500+,150,\"[100,1k)\",34,\"[30,60)\",799,730+,1,1,29,949,1.0,0,0,14,135,6,3,0,0.0,1.0,0.0,0.0,0.0,0.0"
        } else {
            "high_active,0,-124,1,457,\"(250,500]\",20,\"[10,100)\",3,\"[1,5)\",1474,730+,1,3,2,1160,4.0,0,0,31,283,6,2,2,1.0,0.0,1.0,0.0,0.0,0.0"
        };
        format!("{id},{rest}\n")
    };
    let users = |n: usize| {
        let mut text = USER_FEATURES_HEADER.join(",") + "\n";
        (0..n).for_each(|u| text.push_str(&user_row(u)));
        text
    };
    match dataset {
        Dataset::KuaiRec => {
            m.insert(dir.join("small_matrix.csv"), common::small_matrix(3, 4));
            m.insert(dir.join("big_matrix.csv"), common::small_matrix(4, 5));
            m.insert(dir.join("item_categories.csv"), "video_id,feat\n0,[8]\n1,\"[27, 9]\"\n2,[1]\n3,[2]\n4,[3]\n");
            m.insert(dir.join("user_features.csv"), users(4));
            let mut captions = "video_id,manual_cover_text,caption,topic_tag,first_level_category_id,\
                                first_level_category_name,second_level_category_id,second_level_category_name,\
                                third_level_category_id,third_level_category_name\n"
                .to_string();
            for v in 0..5 {
                captions.push_str(&format!("{v},UNKNOWN,精神小伙路难走,[],8,颜值,673,颜值随拍,-124,UNKNOWN\n"));
            }
            m.insert(dir.join("kuairec_caption_category.csv"), captions);
        }
        Dataset::KuaiRandPure => {
            let log = |rand: u8| {
                let mut text = kuairand::LOG_HEADER.join(",") + "\n";
                for (u, v) in [(0, 1), (1, 0), (1, 1)] {
                    text.push_str(&format!(
                        "{u},{v},20220425,0,1650812741436,1,0,0,0,0,0,1,61802,49866,0,0,0,{rand},1\n"
                    ));
                }
                text
            };
            m.insert(dir.join(kuairand::STANDARD_TRAIN), log(0));
            m.insert(dir.join(kuairand::RANDOM), log(1));
            m.insert(dir.join(kuairand::USER_FEATURES), users(2));
            m.insert(
                dir.join(kuairand::VIDEO_FEATURES),
                kuairand::VIDEO_HEADER.join(",")
                    + "\n0,7349781,NORMAL,2022-04-10,LongImport,0.0,87433.0,720.0,1280.0,9155697141,9.0,39\n\
                       1,2103883,NORMAL,2022-04-10,Kmovie,0.0,218066.0,720.0,1280.0,6355810746,9.0,\"2,5\"\n",
            );
            m.insert(dir.join(kuairand::GROUND_TRUTH), "user_id,item_id,value\n0,0,0.1\n0,1,0.9\n1,0,0.5\n1,1,1\n");
        }
        Dataset::Coat => {
            m.insert(dir.join(coat::TRAIN), "0 3 0 5\n1 0 0 0\n0 0 4 2\n");
            m.insert(dir.join(coat::TEST), "2 0 0 0\n0 0 5 0\r\n0 1 0 0\n");
            m.insert(dir.join(coat::PROPENSITIES), "0.5 0.25 1 0.1\n0.5 0.5 0.5 0.5\n0.2 0.2 0.2 0.2\n");
            m.insert(dir.join(coat::USER_FEATURES), "1 0 0 1\n0 1 1 0\n1 0 1 0\n");
            m.insert(dir.join(coat::USER_FEATURES_MAP), "gender:men\ngender:women\nage:young\nage:old");
            m.insert(dir.join(coat::ITEM_FEATURES), "1 0 1 0\n0 1 0 1\n1 0 0 1\n0 1 1 0\n");
            m.insert(dir.join(coat::ITEM_FEATURES_MAP), "gender:men\ngender:women\njacket:a\njacket:b");
        }
    }
    m
}

/// What a loader answered: `Ok`, or the error's text.
fn load(dataset: Dataset, source: Arc<dyn Source>) -> Result<(), String> {
    let dir = Path::new(ROOT).join(dataset.name());
    let result = match dataset {
        Dataset::KuaiRec => kuairec::load_from(source, &dir, &kuairec::LoadOptions::default()).map(drop),
        Dataset::KuaiRandPure => kuairand::load_from(source, &dir, &kuairand::LoadOptions::default()).map(drop),
        Dataset::Coat => coat::load_from(source, &dir).map(drop),
    };
    result.map_err(|e| e.to_string())
}

/// One change to a data set. Positions and indices are taken modulo what exists.
#[derive(Debug, Clone)]
enum Mutation {
    SetByte { file: usize, at: usize, byte: u8 },
    Insert { file: usize, at: usize, bytes: Vec<u8> },
    Delete { file: usize, at: usize, len: usize },
    Truncate { file: usize, at: usize },
    Field { file: usize, nth: usize, token: usize },
    RepeatLine { file: usize, line: usize },
    SwapLines { file: usize, a: usize, b: usize },
    Remove { file: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let file = any::<usize>();
    prop_oneof![
        (file, any::<usize>(), any::<u8>()).prop_map(|(file, at, byte)| Mutation::SetByte { file, at, byte }),
        (file, any::<usize>(), prop::collection::vec(any::<u8>(), 1..6))
            .prop_map(|(file, at, bytes)| Mutation::Insert { file, at, bytes }),
        (file, any::<usize>(), 1usize..40).prop_map(|(file, at, len)| Mutation::Delete { file, at, len }),
        (file, any::<usize>()).prop_map(|(file, at)| Mutation::Truncate { file, at }),
        (file, any::<usize>(), any::<usize>()).prop_map(|(file, nth, token)| Mutation::Field { file, nth, token }),
        (file, any::<usize>()).prop_map(|(file, line)| Mutation::RepeatLine { file, line }),
        (file, any::<usize>(), any::<usize>()).prop_map(|(file, a, b)| Mutation::SwapLines { file, a, b }),
        file.prop_map(|file| Mutation::Remove { file }),
    ]
}

/// The byte ranges of the fields of `bytes` (separated by `,`, whitespace or line ends).
fn fields(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if matches!(b, b',' | b'\n' | b' ') {
            out.push((start, i));
            start = i + 1;
        }
    }
    out.push((start, bytes.len()));
    out
}

/// The byte ranges of the lines of `bytes`, each with its `\n`.
fn lines(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            out.push((start, i + 1));
            start = i + 1;
        }
    }
    if start < bytes.len() {
        out.push((start, bytes.len()));
    }
    out
}

fn apply(memory: &mut Memory, m: &Mutation) {
    let paths: Vec<PathBuf> = memory.files().map(|(p, _)| p.to_path_buf()).collect();
    if paths.is_empty() {
        return;
    }
    let pick = |file: usize| paths[file % paths.len()].clone();
    if let Mutation::Remove { file } = m {
        memory.remove(&pick(*file));
        return;
    }
    let file = match m {
        Mutation::SetByte { file, .. }
        | Mutation::Insert { file, .. }
        | Mutation::Delete { file, .. }
        | Mutation::Truncate { file, .. }
        | Mutation::Field { file, .. }
        | Mutation::RepeatLine { file, .. }
        | Mutation::SwapLines { file, .. }
        | Mutation::Remove { file } => *file,
    };
    let Some(bytes) = memory.get_mut(&pick(file)) else { return };
    let len = bytes.len();
    match m {
        Mutation::SetByte { at, byte, .. } if len > 0 => bytes[at % len] = *byte,
        Mutation::Insert { at, bytes: new, .. } => {
            let at = at % (len + 1);
            bytes.splice(at..at, new.iter().copied());
        }
        Mutation::Delete { at, len: n, .. } if len > 0 => {
            let at = at % len;
            bytes.drain(at..(at + n).min(len));
        }
        Mutation::Truncate { at, .. } => bytes.truncate(at % (len + 1)),
        Mutation::Field { nth, token, .. } => {
            let f = fields(bytes);
            let (a, b) = f[nth % f.len()];
            bytes.splice(a..b, TOKENS[token % TOKENS.len()].iter().copied());
        }
        Mutation::RepeatLine { line, .. } => {
            let l = lines(bytes);
            if let Some(&(a, b)) = l.get(line % l.len().max(1)) {
                let copy = bytes[a..b].to_vec();
                bytes.splice(b..b, copy);
            }
        }
        Mutation::SwapLines { a, b, .. } => {
            let l = lines(bytes);
            if l.len() >= 2 {
                let (x, y) = (l[a % l.len()], l[b % l.len()]);
                let (first, second) = if x.0 <= y.0 { (x, y) } else { (y, x) };
                if first != second {
                    let mut out = bytes[..first.0].to_vec();
                    out.extend_from_slice(&bytes[second.0..second.1]);
                    out.extend_from_slice(&bytes[first.1..second.0]);
                    out.extend_from_slice(&bytes[first.0..first.1]);
                    out.extend_from_slice(&bytes[second.1..]);
                    *bytes = out;
                }
            }
        }
        _ => {}
    }
}

/// The properties every variant must keep.
fn check(dataset: Dataset, memory: Memory) -> Result<(), TestCaseError> {
    let source: Arc<dyn Source> = Arc::new(memory);
    let loaded = load(dataset, source.clone());
    let report = validate_from(source, dataset, &Path::new(ROOT).join(dataset.name()));
    if let Err(e) = &loaded {
        prop_assert!(e.contains(ROOT), "the error does not say where: {e}");
    }
    for problem in &report.problems {
        prop_assert!(
            problem.contains(ROOT) || problem.starts_with("..."),
            "a problem that does not say where: {problem}"
        );
    }
    prop_assert_eq!(
        loaded.is_ok(),
        report.is_ok(),
        "load and validate disagree: load {:?}, validate {:?}",
        loaded,
        report.problems
    );
    Ok(())
}

#[test]
fn the_seeds_load() {
    for dataset in [Dataset::KuaiRec, Dataset::KuaiRandPure, Dataset::Coat] {
        let memory = seed(dataset);
        assert_eq!(load(dataset, Arc::new(memory.clone())), Ok(()), "{dataset}");
        let report = validate_from(Arc::new(memory), dataset, &Path::new(ROOT).join(dataset.name()));
        assert!(report.is_ok(), "{dataset}: {:?}", report.problems);
    }
}

#[test]
fn a_loader_reads_memory_as_it_reads_the_disk() {
    // The same files on disk and in memory give the same data set (the provenance names the same paths only
    // when they are the same, so compare what was loaded).
    let memory = seed(Dataset::Coat);
    let dir = tempfile::tempdir().unwrap();
    for (path, bytes) in memory.files() {
        let rel = path.strip_prefix(Path::new(ROOT).join("coat")).unwrap();
        common::write_bytes(dir.path(), rel.to_str().unwrap(), bytes);
    }
    let from_disk = coat::load(dir.path()).unwrap();
    let from_memory = coat::load_from(Arc::new(memory), &Path::new(ROOT).join("coat")).unwrap();
    assert_eq!(from_disk.train, from_memory.train);
    assert_eq!(from_disk.propensities, from_memory.propensities);
    assert_eq!(from_disk.user_features, from_memory.user_features);
    let hashes = |c: &dsrm_data::Coat| c.provenance.files.iter().map(|f| f.sha256.clone()).collect::<Vec<_>>();
    assert_eq!(hashes(&from_disk), hashes(&from_memory));
}

#[test]
fn the_variants_reach_both_answers_for_every_data_set() {
    // A fuzzer whose variants were all rejected at the first byte (or all accepted) would test little: every
    // data set sees both answers, and most variants are rejected.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    for dataset in [Dataset::KuaiRec, Dataset::KuaiRandPure, Dataset::Coat] {
        let mut runner = TestRunner::deterministic();
        let strategy = prop::collection::vec(mutation(), 1..4);
        let (mut ok, mut rejected) = (0, 0);
        for _ in 0..400 {
            let ms = strategy.new_tree(&mut runner).unwrap().current();
            let mut memory = seed(dataset);
            ms.iter().for_each(|m| apply(&mut memory, m));
            match load(dataset, Arc::new(memory)) {
                Ok(()) => ok += 1,
                Err(_) => rejected += 1,
            }
        }
        println!("{dataset}: {ok} variants loaded, {rejected} rejected");
        assert!(ok >= 10 && rejected >= 200, "{dataset}: {ok} loaded, {rejected} rejected");
    }
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn kuairec_variants_never_panic(ms in prop::collection::vec(mutation(), 1..4)) {
        let mut memory = seed(Dataset::KuaiRec);
        ms.iter().for_each(|m| apply(&mut memory, m));
        check(Dataset::KuaiRec, memory)?;
    }

    #[test]
    fn kuairand_variants_never_panic(ms in prop::collection::vec(mutation(), 1..4)) {
        let mut memory = seed(Dataset::KuaiRandPure);
        ms.iter().for_each(|m| apply(&mut memory, m));
        check(Dataset::KuaiRandPure, memory)?;
    }

    #[test]
    fn coat_variants_never_panic(ms in prop::collection::vec(mutation(), 1..4)) {
        let mut memory = seed(Dataset::Coat);
        ms.iter().for_each(|m| apply(&mut memory, m));
        check(Dataset::Coat, memory)?;
    }
}
