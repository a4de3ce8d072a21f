//! The usage log's segments and their sidecar indexes.
//!
//! The log is a sequence of time-ordered segments: rotated files `usage-STAMP.jsonl` (or
//! `usage-STAMP.jsonl.gz` once compressed) and the active `usage.jsonl`. Each rotated
//! segment has a sidecar `<segment>.idx` ([`SegmentIndex`], JSON): its time range and its
//! blocks of [`BLOCK_RECORDS`] records with their byte ranges and time ranges, and for each
//! project, model, token and outcome the blocks that hold it. The active segment's index
//! is kept in memory by the writer (and in the usage checkpoint). A reader therefore opens
//! only the blocks that can hold what it looks for, newest first.
//!
//! A compressed segment is a concatenation of one gzip member per block (so `zcat` reads it
//! whole, and a reader inflates only the blocks it needs); its index carries each block's
//! compressed range. The JSON Lines text stays the source of truth: an index is derived,
//! rebuilt by reading its segment when missing or unreadable.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use routerly_core::usage::{Outcome, UsageRecord};
use serde::{Deserialize, Serialize};

use super::rollup::{Filter, outcome_index};

/// Records per block of a segment index.
pub const BLOCK_RECORDS: u32 = 1024;
/// Format version of sidecar indexes.
const INDEX_VERSION: u32 = 2;

/// A run of consecutive records in a segment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Block {
    /// Byte offset of its first line in the plain text.
    pub offset: u64,
    /// Bytes of its lines.
    pub len: u64,
    /// Records in it.
    pub records: u32,
    /// Earliest and latest record time, in ms since the epoch.
    pub min_ms: i64,
    /// Latest record time.
    pub max_ms: i64,
    /// Where its gzip member starts in a compressed segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gz_offset: Option<u64>,
    /// Its gzip member's length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gz_len: Option<u64>,
}

/// What a segment holds and where.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentIndex {
    /// Format version.
    pub version: u32,
    /// Records indexed.
    pub records: u64,
    /// Bytes of plain text indexed (complete lines only).
    pub bytes: u64,
    /// The blocks, in file order.
    pub blocks: Vec<Block>,
    /// Per project id, the blocks holding it (ascending), each with the outcomes (a bit per
    /// outcome index) of that project's records there.
    pub projects: BTreeMap<String, Vec<(u32, u8)>>,
    /// Per model id (`""`: none tried), the blocks holding it, with outcomes.
    pub models: BTreeMap<String, Vec<(u32, u8)>>,
    /// Per token id, the blocks holding it, with outcomes.
    pub tokens: BTreeMap<String, Vec<(u32, u8)>>,
    /// Per outcome, the blocks holding it.
    pub outcomes: BTreeMap<String, Vec<u32>>,
}

fn mark(map: &mut BTreeMap<String, Vec<u32>>, key: &str, block: u32) {
    if let Some(blocks) = map.get_mut(key) {
        if blocks.last() != Some(&block) {
            blocks.push(block);
        }
    } else {
        map.insert(key.to_owned(), vec![block]);
    }
}

fn mark_with(map: &mut BTreeMap<String, Vec<(u32, u8)>>, key: &str, block: u32, outcome: u8) {
    let bit = 1u8 << outcome;
    if let Some(blocks) = map.get_mut(key) {
        match blocks.last_mut() {
            Some(last) if last.0 == block => last.1 |= bit,
            _ => blocks.push((block, bit)),
        }
    } else {
        map.insert(key.to_owned(), vec![(block, bit)]);
    }
}

fn holds(map: &BTreeMap<String, Vec<u32>>, key: Option<&str>, block: u32) -> bool {
    key.is_none_or(|key| {
        map.get(key)
            .is_some_and(|blocks| blocks.binary_search(&block).is_ok())
    })
}

/// Whether `block` holds a record of `key` with one of the outcomes in `outcomes` (bits).
fn holds_with(map: &BTreeMap<String, Vec<(u32, u8)>>, key: &str, block: u32, outcomes: u8) -> bool {
    map.get(key).is_some_and(|blocks| {
        blocks
            .binary_search_by_key(&block, |(number, _)| *number)
            .is_ok_and(|at| blocks[at].1 & outcomes != 0)
    })
}

impl SegmentIndex {
    /// Indexes `record`, whose line (newline included) is `len` bytes at `offset`.
    pub fn add(&mut self, record: &UsageRecord, offset: u64, len: u64) {
        self.version = INDEX_VERSION;
        let at = record.timestamp.timestamp_millis();
        if self
            .blocks
            .last()
            .is_none_or(|block| block.records >= BLOCK_RECORDS)
        {
            self.blocks.push(Block {
                offset,
                len: 0,
                records: 0,
                min_ms: at,
                max_ms: at,
                gz_offset: None,
                gz_len: None,
            });
        }
        let number = (self.blocks.len() - 1) as u32;
        let block = self.blocks.last_mut().expect("a block was just ensured");
        block.len = offset + len - block.offset;
        block.records += 1;
        block.min_ms = block.min_ms.min(at);
        block.max_ms = block.max_ms.max(at);
        self.records += 1;
        self.bytes = self.bytes.max(offset + len);
        let outcome = outcome_index(record.outcome);
        mark_with(&mut self.projects, &record.project_id, number, outcome);
        mark_with(
            &mut self.models,
            record.model_id.as_deref().unwrap_or(""),
            number,
            outcome,
        );
        mark_with(&mut self.tokens, &record.token_id, number, outcome);
        mark(&mut self.outcomes, record.outcome.name(), number);
    }

    /// Earliest record time (ms), or `None` when empty.
    pub fn first_ms(&self) -> Option<i64> {
        self.blocks.iter().map(|block| block.min_ms).min()
    }

    /// Latest record time (ms), or `None` when empty.
    pub fn last_ms(&self) -> Option<i64> {
        self.blocks.iter().map(|block| block.max_ms).max()
    }

    /// The blocks that can hold records matching `filter`, in file order.
    pub fn candidates(&self, filter: &Filter) -> Vec<u32> {
        let from_ms = filter.from.map(|from| from.saturating_mul(1000));
        let to_ms = filter.to.map(|to| to.saturating_mul(1000));
        let outcome = filter.outcome.map(Outcome::name);
        // A value's blocks say which outcomes it had there: "one token's errors" skips
        // the blocks where that token only succeeded.
        let outcomes = filter
            .outcome
            .map_or(u8::MAX, |outcome| 1u8 << outcome_index(outcome));
        (0..self.blocks.len() as u32)
            .filter(|&number| {
                let block = &self.blocks[number as usize];
                from_ms.is_none_or(|from| block.max_ms >= from)
                    && to_ms.is_none_or(|to| block.min_ms < to)
                    && holds(&self.outcomes, outcome, number)
                    && filter
                        .model
                        .as_deref()
                        .is_none_or(|model| holds_with(&self.models, model, number, outcomes))
                    && filter
                        .token
                        .as_deref()
                        .is_none_or(|token| holds_with(&self.tokens, token, number, outcomes))
                    && filter.projects.as_ref().is_none_or(|projects| {
                        projects
                            .iter()
                            .any(|project| holds_with(&self.projects, project, number, outcomes))
                    })
            })
            .collect()
    }
}

/// One segment of the log.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Its file.
    pub path: PathBuf,
    /// Whether it is gzip-compressed.
    pub compressed: bool,
    /// Its index.
    pub index: SegmentIndex,
}

/// The sidecar index path of `segment`.
pub fn sidecar_path(segment: &Path) -> PathBuf {
    let mut name = segment.as_os_str().to_owned();
    name.push(".idx");
    PathBuf::from(name)
}

/// Writes `index` as the sidecar of `segment`, atomically.
pub fn write_sidecar(segment: &Path, index: &SegmentIndex) -> io::Result<()> {
    super::files::write_json_atomic(&sidecar_path(segment), index).map(drop)
}

/// The sidecar of `segment`, when present and readable.
pub fn read_sidecar(segment: &Path) -> Option<SegmentIndex> {
    let bytes = fs::read(sidecar_path(segment)).ok()?;
    serde_json::from_slice::<SegmentIndex>(&bytes)
        .ok()
        .filter(|index| index.version == INDEX_VERSION)
}

/// Whether `name` is a rotated segment's file name.
fn is_rotated_name(name: &str) -> bool {
    name.starts_with("usage-") && (name.ends_with(".jsonl") || name.ends_with(".jsonl.gz"))
}

/// The rotated segments beside the active log `active`, oldest first. A segment found both
/// plain and compressed (a compression cut short) counts as plain.
pub fn rotated_segments(active: &Path) -> io::Result<Vec<PathBuf>> {
    let dir = active.parent().unwrap_or(Path::new("."));
    let mut names = Vec::new();
    match fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                let name = entry?.file_name();
                let Some(name) = name.to_str() else { continue };
                if is_rotated_name(name) {
                    names.push(name.to_owned());
                }
            }
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    }
    names.sort();
    Ok(names
        .iter()
        .filter(|name| {
            name.strip_suffix(".gz")
                .is_none_or(|plain| names.binary_search(&plain.to_owned()).is_err())
        })
        .map(|name| dir.join(name))
        .collect())
}

/// Removes what an interrupted compression left: temporary files, and a compressed copy of
/// a segment whose plain file is still there. Called once, at start-up.
pub fn clean_interrupted(active: &Path) -> io::Result<()> {
    let dir = active.parent().unwrap_or(Path::new("."));
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with("usage-") {
            continue;
        }
        let path = dir.join(name);
        let duplicate = name
            .strip_suffix(".jsonl.gz")
            .is_some_and(|stem| dir.join(format!("{stem}.jsonl")).exists());
        if name.ends_with(".tmp") || duplicate {
            tracing::warn!(path = %path.display(), "removing what an interrupted compression left");
            fs::remove_file(&path)?;
            if duplicate {
                let _ = fs::remove_file(sidecar_path(&path));
            }
        }
    }
    Ok(())
}

/// A reader of `path`'s plain text (inflating a compressed segment).
pub fn open_text(path: &Path) -> io::Result<Box<dyn BufRead + Send>> {
    let file = File::open(path)?;
    if path.extension().is_some_and(|ext| ext == "gz") {
        Ok(Box::new(BufReader::with_capacity(
            1 << 20,
            MultiGzDecoder::new(BufReader::new(file)),
        )))
    } else {
        Ok(Box::new(BufReader::with_capacity(1 << 20, file)))
    }
}

/// Visits every complete line of `reader` with its byte offset (from `start`) and length.
pub fn for_each_line(
    reader: &mut dyn BufRead,
    start: u64,
    mut visit: impl FnMut(&[u8], u64, u64),
) -> io::Result<()> {
    let mut offset = start;
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line)?;
        if read == 0 || line.last() != Some(&b'\n') {
            // The end, or a torn last line (skipped; the writer closes it on its next open).
            break;
        }
        visit(&line, offset, read as u64);
        offset += read as u64;
    }
    Ok(())
}

/// Builds the index of a segment by reading it.
pub fn build_index(path: &Path) -> io::Result<SegmentIndex> {
    let mut index = SegmentIndex::default();
    let mut reader = open_text(path)?;
    for_each_line(&mut *reader, 0, |line, offset, len| {
        if let Ok(record) = serde_json::from_slice::<UsageRecord>(line) {
            index.add(&record, offset, len);
        }
    })?;
    index.version = INDEX_VERSION;
    Ok(index)
}

/// The index of a compressed segment whose sidecar is lost: read through once, and kept as
/// one block spanning the whole file (every reader inflates all of it, correctly if slowly).
pub fn build_compressed_index(path: &Path) -> io::Result<SegmentIndex> {
    let index = build_index(path)?;
    let mut whole = SegmentIndex {
        version: INDEX_VERSION,
        records: index.records,
        bytes: index.bytes,
        ..SegmentIndex::default()
    };
    if index.blocks.is_empty() {
        return Ok(whole);
    }
    whole.blocks.push(Block {
        offset: 0,
        len: index.bytes,
        records: index.records.min(u64::from(u32::MAX)) as u32,
        min_ms: index.first_ms().unwrap_or(0),
        max_ms: index.last_ms().unwrap_or(0),
        gz_offset: Some(0),
        gz_len: Some(fs::metadata(path)?.len()),
    });
    let collapse = |map: BTreeMap<String, Vec<(u32, u8)>>| {
        map.into_iter()
            .map(|(key, blocks)| {
                (
                    key,
                    vec![(0, blocks.iter().fold(0, |mask, (_, bits)| mask | bits))],
                )
            })
            .collect()
    };
    whole.projects = collapse(index.projects);
    whole.models = collapse(index.models);
    whole.tokens = collapse(index.tokens);
    whole.outcomes = index
        .outcomes
        .into_keys()
        .map(|key| (key, vec![0]))
        .collect();
    Ok(whole)
}

/// The text of block `number` of `segment`.
pub fn read_block(segment: &Segment, number: u32) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let block = &segment.index.blocks[number as usize];
    let file = File::open(&segment.path)?;
    match (segment.compressed, block.gz_offset, block.gz_len) {
        (true, Some(gz_offset), Some(gz_len)) => {
            let mut packed = vec![0u8; gz_len as usize];
            file.read_exact_at(&mut packed, gz_offset)?;
            let mut text = Vec::with_capacity(block.len as usize);
            MultiGzDecoder::new(&packed[..]).read_to_end(&mut text)?;
            Ok(text)
        }
        (true, _, _) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: index lacks compressed offsets", segment.path.display()),
        )),
        (false, _, _) => {
            let mut text = vec![0u8; block.len as usize];
            file.read_exact_at(&mut text, block.offset)?;
            Ok(text)
        }
    }
}

/// Byte strings every line matching `filter` contains as the writer serializes records
/// (`"model_id":"m"`, …): lines without one of them are skipped unparsed. Only exact
/// conditions the serialized form shows are used; the parsed record is still checked.
pub fn needles(filter: &Filter) -> Vec<memchr::memmem::Finder<'static>> {
    let json = |value: &str| serde_json::to_string(value).unwrap_or_default();
    let mut needles = Vec::new();
    let mut pair = |key: &str, value: &Option<String>| {
        if let Some(value) = value {
            let text = if value.is_empty() && (key == "model_id" || key == "user") {
                format!("\"{key}\":null")
            } else {
                format!("\"{key}\":{}", json(value))
            };
            needles.push(memchr::memmem::Finder::new(text.as_bytes()).into_owned());
        }
    };
    pair("model_id", &filter.model);
    pair("token_id", &filter.token);
    pair("user", &filter.user);
    if let Some(projects) = &filter.projects
        && projects.len() == 1
    {
        pair("project_id", &projects.iter().next().cloned());
    }
    if let Some(outcome) = filter.outcome {
        pair("outcome", &Some(outcome.name().to_owned()));
    }
    if let Some(tag) = &filter.tag {
        needles.push(memchr::memmem::Finder::new(json(tag).as_bytes()).into_owned());
    }
    needles
}

/// The records of `text` (one block) whose lines contain every one of `needles`, in file
/// order, each with its line (without the newline), skipping unreadable lines.
pub fn parse_block_matching<'t>(
    text: &'t [u8],
    needles: &[memchr::memmem::Finder<'_>],
) -> Vec<(UsageRecord, &'t [u8])> {
    text.split(|byte| *byte == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .filter(|line| needles.iter().all(|needle| needle.find(line).is_some()))
        .filter_map(|line| {
            serde_json::from_slice::<UsageRecord>(line)
                .ok()
                .map(|record| (record, line))
        })
        .collect()
}

/// A compressed copy of a segment, written but not yet in place.
#[derive(Debug)]
pub struct Prepared {
    tmp_path: PathBuf,
    index: SegmentIndex,
}

/// Writes a compressed copy of the plain segment `segment` (one gzip member per block)
/// beside it, under a temporary name; [`compress_commit`] puts it in place.
pub fn compress_prepare(segment: &Segment) -> io::Result<Prepared> {
    use std::os::unix::fs::FileExt;
    let tmp_path = PathBuf::from(format!("{}.gz.tmp", segment.path.display()));
    let mut index = segment.index.clone();
    let mut out = io::BufWriter::new(File::create(&tmp_path)?);
    let mut written = 0u64;
    let member = |text: &[u8], out: &mut io::BufWriter<File>| -> io::Result<u64> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(text)?;
        let packed = encoder.finish()?;
        out.write_all(&packed)?;
        Ok(packed.len() as u64)
    };
    for number in 0..index.blocks.len() as u32 {
        let text = read_block(segment, number)?;
        let len = member(&text, &mut out)?;
        let block = &mut index.blocks[number as usize];
        block.gz_offset = Some(written);
        block.gz_len = Some(len);
        written += len;
    }
    // Lines past the last block (unreadable ones) are kept, in a member of their own.
    let plain_len = fs::metadata(&segment.path)?.len();
    if plain_len > segment.index.bytes {
        let mut rest = vec![0u8; (plain_len - segment.index.bytes) as usize];
        File::open(&segment.path)?.read_exact_at(&mut rest, segment.index.bytes)?;
        member(&rest, &mut out)?;
    }
    let file = out.into_inner().map_err(|error| error.into_error())?;
    file.sync_all()?;
    Ok(Prepared { tmp_path, index })
}

/// Puts a compressed copy in place of its plain segment: renamed to `<segment>.gz`, its
/// sidecar written, the plain file and its sidecar removed (in this order, so a crash
/// leaves either the plain segment, or both, which start-up resolves to the plain one).
pub fn compress_commit(segment: &Segment, prepared: Prepared) -> io::Result<Segment> {
    let gz_path = PathBuf::from(format!("{}.gz", segment.path.display()));
    fs::rename(&prepared.tmp_path, &gz_path)?;
    write_sidecar(&gz_path, &prepared.index)?;
    fs::remove_file(&segment.path)?;
    let _ = fs::remove_file(sidecar_path(&segment.path));
    if let Some(dir) = segment.path.parent()
        && let Ok(dir) = File::open(dir)
    {
        let _ = dir.sync_all();
    }
    Ok(Segment {
        path: gz_path,
        compressed: true,
        index: prepared.index,
    })
}

/// Removes a segment and its sidecar.
pub fn remove(segment: &Segment) -> io::Result<()> {
    fs::remove_file(&segment.path)?;
    let _ = fs::remove_file(sidecar_path(&segment.path));
    Ok(())
}

/// When a segment's newest record was written, as a time.
pub fn last_time(segment: &Segment) -> Option<DateTime<Utc>> {
    segment
        .index
        .last_ms()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use routerly_core::usage::{CallType, Outcome, Surface};

    use super::*;

    fn record(
        index: usize,
        model: Option<&str>,
        user: Option<&str>,
        tag: &str,
        outcome: Outcome,
    ) -> UsageRecord {
        UsageRecord {
            requested_model: None,
            id: format!("r{index}"),
            timestamp: Utc.timestamp_opt(1_767_225_600 + index as i64, 0).unwrap(),
            project_id: if index.is_multiple_of(2) {
                "p\"1".to_owned()
            } else {
                "p2".to_owned()
            },
            token_id: "t/1".to_owned(),
            model_id: model.map(str::to_owned),
            provider: None,
            surface: Surface::Messages,
            call_type: CallType::Completion,
            stream: false,
            input_tokens: 1,
            output_tokens: 1,
            cached_input_tokens: 0,
            cache_write_tokens: 0,
            cost_usd: 0.0,
            input_cost_usd: 0.0,
            output_cost_usd: 0.0,
            latency_ms: 1.0,
            ttft_ms: None,
            overhead_ms: 0.0,
            outcome,
            status: 200,
            error: None,
            trace_id: format!("trace-{index}"),
            user: user.map(str::to_owned),
            tags: vec![tag.to_owned()],
            attempts: Vec::new(),
        }
    }

    /// The unparsed-line prefilter never drops a line the filter matches, whatever the
    /// values hold (quotes, slashes, non-ASCII, none at all).
    #[test]
    fn needles_keep_every_matching_line() {
        let models = [Some("m\"1"), Some("modèle/ü"), None];
        let users = [Some("ünïcode \\ user"), None];
        let tags = ["a,b", "tag \"q\"", "日本"];
        let outcomes = [Outcome::Success, Outcome::Error, Outcome::BudgetExceeded];
        let mut records = Vec::new();
        for index in 0..72 {
            records.push(record(
                index,
                models[index % 3],
                users[index % 2],
                tags[(index / 3) % 3],
                outcomes[(index / 9) % 3],
            ));
        }
        let mut text = Vec::new();
        for record in &records {
            text.extend(serde_json::to_vec(record).unwrap());
            text.push(b'\n');
        }
        let mut index = SegmentIndex::default();
        let mut offset = 0;
        for record in &records {
            let len = serde_json::to_vec(record).unwrap().len() as u64 + 1;
            index.add(record, offset, len);
            offset += len;
        }
        for model in models.iter().map(|m| m.unwrap_or("").to_owned()) {
            for user in users.iter().map(|u| u.unwrap_or("").to_owned()) {
                for tag in tags {
                    for outcome in outcomes {
                        for project in ["p\"1", "p2"] {
                            let filter = Filter {
                                projects: Some([project.to_owned()].into_iter().collect()),
                                model: Some(model.clone()),
                                token: Some("t/1".to_owned()),
                                user: Some(user.clone()),
                                tag: Some(tag.to_owned()),
                                outcome: Some(outcome),
                                ..Filter::default()
                            };
                            let expected: Vec<&str> = records
                                .iter()
                                .filter(|r| filter.matches(r))
                                .map(|r| r.id.as_str())
                                .collect();
                            let found: Vec<String> = parse_block_matching(&text, &needles(&filter))
                                .into_iter()
                                .filter(|(r, _)| filter.matches(r))
                                .map(|(r, _)| r.id)
                                .collect();
                            assert_eq!(found, expected, "{filter:?}");
                            if !expected.is_empty() {
                                assert_eq!(
                                    index.candidates(&filter),
                                    vec![0],
                                    "the block holds {filter:?}"
                                );
                            }
                        }
                    }
                }
            }
        }
        let none = Filter {
            model: Some("absent".to_owned()),
            ..Filter::default()
        };
        assert!(
            index.candidates(&none).is_empty(),
            "no block holds an absent model"
        );
    }
}
