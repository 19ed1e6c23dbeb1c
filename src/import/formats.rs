//! Row readers for each import format. Each yields rows one at a time from a stream,
//! so a file of any size is read in constant memory, and reports a bad row with its
//! line number instead of stopping.

use super::reason::Reason;
use std::io::{BufRead, Read};

use serde_json::Value;

use crate::labels::{Label, LabelSet};
use crate::split::Split;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Csv,
    Tsv,
    Jsonl,
    NiklAbsa,
}

impl Format {
    /// Guesses from the file name; NIKL files are JSONL and must be named explicitly.
    pub fn from_path(path: &str) -> Option<Format> {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".csv") {
            Some(Format::Csv)
        } else if lower.ends_with(".tsv") || lower.ends_with(".tab") {
            Some(Format::Tsv)
        } else if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
            Some(Format::Jsonl)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Jsonl => "jsonl",
            Format::NiklAbsa => "nikl-absa",
        }
    }
}

/// A row as read, before it is checked against the taxonomy.
#[derive(Debug, Clone, Default)]
pub struct RawRow {
    pub line: u64,
    pub text: String,
    pub mall: Option<String>,
    pub category: Option<String>,
    pub external_id: Option<String>,
    pub labels: Option<LabelSet>,
    pub split: Option<Split>,
    /// Something worth telling the user that did not stop the row.
    pub warning: Option<Reason>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowProblem {
    pub line: u64,
    pub reason: Reason,
}

pub type RowResult = Result<RawRow, RowProblem>;

/// A whole-file problem (no text column, unreadable header): nothing is imported.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FileError(pub String);

pub fn rows<'a, R: BufRead + Send + 'a>(
    format: Format,
    reader: R,
) -> Result<Box<dyn Iterator<Item = RowResult> + Send + 'a>, FileError> {
    Ok(match format {
        Format::Csv => Box::new(DelimitedRows::new(reader, b',')?),
        Format::Tsv => Box::new(DelimitedRows::new(reader, b'\t')?),
        Format::Jsonl => Box::new(JsonLines::new(reader, parse_jsonl_row)),
        Format::NiklAbsa => Box::new(JsonLines::new(reader, parse_nikl_row)),
    })
}

fn problem(line: u64, reason: impl Into<Reason>) -> RowProblem {
    RowProblem { line, reason: reason.into() }
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// Labels written as JSON (`{..}` / `[..]`) or in the compact form.
fn parse_label_cell(cell: &str) -> Result<Option<LabelSet>, Reason> {
    let trimmed = cell.trim();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let value = serde_json::from_str::<Value>(trimmed)
            .map_err(|e| Reason::LabelsJson { detail: e.to_string() })?;
        Ok(LabelSet::parse_json(&value)?)
    } else {
        Ok(LabelSet::parse_compact(trimmed)?)
    }
}

fn parse_split(cell: &str) -> Result<Option<Split>, Reason> {
    match non_empty(cell) {
        None => Ok(None),
        Some(s) => Split::parse(&s).map(Some).ok_or(Reason::Split { split: s }),
    }
}

// ---- CSV / TSV ----

#[derive(Default)]
struct Columns {
    text: usize,
    mall: Option<usize>,
    category: Option<usize>,
    external_id: Option<usize>,
    labels: Option<usize>,
    split: Option<usize>,
}

impl Columns {
    fn from_header(header: &csv::ByteRecord) -> Result<Self, FileError> {
        let names: Vec<String> = header
            .iter()
            .map(|h| String::from_utf8_lossy(h).trim().trim_start_matches('\u{feff}').to_lowercase())
            .collect();
        let find = |aliases: &[&str]| names.iter().position(|n| aliases.contains(&n.as_str()));
        let text = find(&["text", "review", "sentence", "sentence_form", "content", "리뷰", "내용", "본문"])
            .ok_or_else(|| {
                FileError(format!(
                    "no text column in the header (found: {}); name it `text`",
                    names.join(", ")
                ))
            })?;
        Ok(Columns {
            text,
            mall: find(&["mall", "shop", "store", "몰", "쇼핑몰"]),
            category: find(&["category", "카테고리", "분류"]),
            external_id: find(&["external_id", "id", "review_id"]),
            labels: find(&["labels", "label", "keywords", "라벨", "키워드"]),
            split: find(&["split"]),
        })
    }
}

struct DelimitedRows<R: BufRead> {
    reader: csv::Reader<R>,
    columns: Columns,
    record: csv::ByteRecord,
    width: usize,
    failed: bool,
}

impl<R: BufRead> DelimitedRows<R> {
    fn new(reader: R, delimiter: u8) -> Result<Self, FileError> {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .has_headers(true)
            .from_reader(reader);
        let header =
            reader.byte_headers().map_err(|e| FileError(format!("cannot read the header: {e}")))?.clone();
        Ok(DelimitedRows {
            columns: Columns::from_header(&header)?,
            width: header.len(),
            reader,
            record: csv::ByteRecord::new(),
            failed: false,
        })
    }

    /// A cell, without the mark export puts before spreadsheet formulas.
    fn field(&self, index: Option<usize>, line: u64, name: &str) -> Result<Option<String>, RowProblem> {
        let Some(bytes) = index.and_then(|i| self.record.get(i)) else {
            return Ok(None);
        };
        std::str::from_utf8(bytes)
            .map(|s| Some(crate::csv_cells::restore(s.to_string())))
            .map_err(|_| problem(line, Reason::ColumnUtf8 { column: name.to_string() }))
    }

    fn parse_record(&self, line: u64) -> RowResult {
        if self.record.len() != self.width {
            return Err(problem(line, Reason::FieldCount { expected: self.width, found: self.record.len() }));
        }
        let c = &self.columns;
        let text = self.field(Some(c.text), line, "text")?.unwrap_or_default();
        let labels = match self.field(c.labels, line, "labels")? {
            Some(cell) => parse_label_cell(&cell).map_err(|e| problem(line, e))?,
            None => None,
        };
        let split = parse_split(&self.field(c.split, line, "split")?.unwrap_or_default())
            .map_err(|e| problem(line, e))?;
        Ok(RawRow {
            line,
            text,
            mall: self.field(c.mall, line, "mall")?,
            category: self.field(c.category, line, "category")?,
            external_id: self.field(c.external_id, line, "external_id")?.and_then(|s| non_empty(&s)),
            labels,
            split,
            warning: None,
        })
    }
}

impl<R: BufRead> Iterator for DelimitedRows<R> {
    type Item = RowResult;

    fn next(&mut self) -> Option<RowResult> {
        if self.failed {
            return None;
        }
        match self.reader.read_byte_record(&mut self.record) {
            Ok(false) => None,
            Ok(true) => {
                let line = self.record.position().map(|p| p.line()).unwrap_or(0);
                Some(self.parse_record(line))
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                // An I/O error ends the stream; a malformed record only costs that row.
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    self.failed = true;
                    return Some(Err(problem(line, Reason::Read { detail: e.to_string() })));
                }
                Some(Err(problem(line, Reason::Malformed { detail: e.to_string() })))
            }
        }
    }
}

// ---- JSON lines ----

struct JsonLines<R: BufRead> {
    reader: R,
    line: u64,
    buffer: Vec<u8>,
    parse: fn(u64, Value) -> RowResult,
    failed: bool,
}

impl<R: BufRead> JsonLines<R> {
    fn new(reader: R, parse: fn(u64, Value) -> RowResult) -> Self {
        JsonLines { reader, line: 0, buffer: Vec::new(), parse, failed: false }
    }
}

impl<R: BufRead> Iterator for JsonLines<R> {
    type Item = RowResult;

    fn next(&mut self) -> Option<RowResult> {
        loop {
            if self.failed {
                return None;
            }
            self.buffer.clear();
            self.line += 1;
            let limit = MAX_LINE_BYTES as u64 + 1;
            match self.reader.by_ref().take(limit).read_until(b'\n', &mut self.buffer) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    self.failed = true;
                    return Some(Err(problem(self.line, Reason::Read { detail: e.to_string() })));
                }
            }
            if self.buffer.len() > MAX_LINE_BYTES {
                // The rest of the line is read past, never held.
                if let Err(e) = skip_line(&mut self.reader) {
                    self.failed = true;
                    return Some(Err(problem(self.line, Reason::Read { detail: e.to_string() })));
                }
                return Some(Err(problem(self.line, Reason::LineTooLong { limit: MAX_LINE_BYTES })));
            }
            let Ok(text) = std::str::from_utf8(&self.buffer) else {
                return Some(Err(problem(self.line, Reason::LineUtf8)));
            };
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            return Some(match serde_json::from_str::<Value>(text) {
                Ok(value) => (self.parse)(self.line, value),
                Err(e) => Err(problem(self.line, Reason::Json { detail: e.to_string() })),
            });
        }
    }
}

/// Longest JSON line read (a review of 5,000 characters with labels is about 20 KB):
/// a longer one is reported by its number and skipped, so one broken line cannot fill
/// the memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Reads up to and including the next newline, keeping nothing.
fn skip_line<R: BufRead>(reader: &mut R) -> std::io::Result<()> {
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(());
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(at) => {
                reader.consume(at + 1);
                return Ok(());
            }
            None => {
                let n = chunk.len();
                reader.consume(n);
            }
        }
    }
}

fn string_field(value: &Value, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| match value.get(*n)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn parse_jsonl_row(line: u64, value: Value) -> RowResult {
    if !value.is_object() {
        return Err(problem(line, Reason::NotObject));
    }
    let labels = match value.get("labels") {
        Some(v) => LabelSet::parse_json(v).map_err(|e| problem(line, e))?,
        None => None,
    };
    let split =
        parse_split(&string_field(&value, &["split"]).unwrap_or_default()).map_err(|e| problem(line, e))?;
    Ok(RawRow {
        line,
        text: string_field(&value, &["text", "review", "sentence_form"]).unwrap_or_default(),
        mall: string_field(&value, &["mall"]),
        category: string_field(&value, &["category"]),
        external_id: string_field(&value, &["external_id", "id"]).and_then(|s| non_empty(&s)),
        labels,
        split,
        warning: None,
    })
}

/// NIKL 2022 ABSA: `{"id", "sentence_form", "annotation": [[category, [target, s, e], polarity], ..]}`.
/// An empty annotation list is how the corpus marks unlabelled sentences.
fn parse_nikl_row(line: u64, value: Value) -> RowResult {
    let text = string_field(&value, &["sentence_form"])
        .ok_or_else(|| problem(line, Reason::MissingField { field: "sentence_form".into() }))?;
    let annotation = value.get("annotation").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut labels: Vec<Label> = Vec::new();
    let mut conflicts = Vec::new();
    for item in &annotation {
        let category =
            item.get(0).and_then(Value::as_str).ok_or_else(|| problem(line, Reason::NoCategory))?;
        let polarity = item.get(2).and_then(Value::as_str).unwrap_or("");
        let level = match polarity {
            "positive" => 1,
            "neutral" => 0,
            "negative" => -1,
            other => {
                let (polarity, category) = (other.to_string(), category.to_string());
                return Err(problem(line, Reason::Polarity { polarity, category }));
            }
        };
        match labels.iter_mut().find(|l| l.keyword == category) {
            // The rule for one category named twice with different polarities: the
            // sentence is mixed about that aspect, so it is labelled neutral (0).
            Some(seen) if seen.sentiment != level => {
                seen.sentiment = 0;
                conflicts.push(category.to_string());
            }
            Some(_) => {}
            None => labels.push(Label { keyword: category.to_string(), sentiment: level }),
        }
    }
    let warning = (!conflicts.is_empty()).then(|| Reason::MixedPolarity { categories: conflicts.join(", ") });
    Ok(RawRow {
        line,
        text,
        external_id: string_field(&value, &["id"]),
        labels: (!labels.is_empty()).then_some(LabelSet::Keywords(labels)),
        warning,
        ..RawRow::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(format: Format, input: &str) -> Vec<RowResult> {
        rows(format, input.as_bytes()).unwrap().collect()
    }

    #[test]
    fn csv_columns_are_found_by_header_name_in_any_order() {
        let rows =
            collect(Format::Csv, "labels,몰,text\n\"디자인1, 배송-1\",A몰,옷은 예쁘지만 배송은 늦어요\n");
        let row = rows[0].as_ref().unwrap();
        assert_eq!(row.text, "옷은 예쁘지만 배송은 늦어요");
        assert_eq!(row.mall.as_deref(), Some("A몰"));
        assert_eq!(row.labels.as_ref().unwrap().labels().len(), 2);
        assert_eq!(row.line, 2);
    }

    #[test]
    fn a_csv_without_a_text_column_is_refused_whole() {
        assert!(rows(Format::Csv, "review_body,mall\nx,y\n".as_bytes()).is_err());
    }

    #[test]
    fn bad_rows_carry_their_line_numbers() {
        let input =
            b"text,labels\n\xff\xfe,\nok,\"\xec\xa2\x8b,,\"\nfine,\xeb\xb0\xb0\xec\x86\xa1\n".to_vec();
        let rows: Vec<_> = rows(Format::Csv, &input[..]).unwrap().collect();
        assert_eq!(rows[0].as_ref().unwrap_err().line, 2);
        assert!(rows[0].as_ref().unwrap_err().reason.to_string().contains("UTF-8"));
        assert!(
            rows[2].as_ref().unwrap_err().reason.to_string().contains("sentiment level"),
            "{:?}",
            rows[2]
        );
        assert_eq!(rows[2].as_ref().unwrap_err().line, 4);
    }

    #[test]
    fn an_over_long_json_line_is_reported_by_number_and_the_next_lines_still_read() {
        let long = format!("{{\"text\":\"{}\"}}", "가".repeat(MAX_LINE_BYTES / 3 + 10));
        let input = format!("{{\"text\":\"첫째\"}}\n{long}\n{{\"text\":\"셋째\"}}\n{long}");
        let rows = collect(Format::Jsonl, &input);
        assert_eq!(rows.len(), 4);
        let problem = rows[1].as_ref().unwrap_err();
        assert_eq!(problem.line, 2);
        assert!(problem.reason.to_string().contains("longer than"), "{}", problem.reason);
        assert_eq!(rows[2].as_ref().unwrap().text, "셋째");
        assert_eq!(rows[2].as_ref().unwrap().line, 3);
        assert_eq!(rows[3].as_ref().unwrap_err().line, 4, "a long last line without a newline");
    }

    #[test]
    fn jsonl_reports_broken_lines_and_skips_blank_ones() {
        let rows =
            collect(Format::Jsonl, "{\"text\":\"좋아요\",\"labels\":{\"만족도\":2}}\n\n{broken\n[1]\n");
        assert!(rows[0].is_ok());
        assert_eq!(rows[1].as_ref().unwrap_err().line, 3);
        assert_eq!(rows[2].as_ref().unwrap_err().line, 4);
    }

    #[test]
    fn nikl_rows_map_polarity_and_resolve_conflicts_to_neutral() {
        let line = r#"{"id":"x-1","sentence_form":"좋다 싫다","annotation":[["본품#품질",["a",0,1],"positive"],["본품#품질",[null,0,0],"negative"],["브랜드#일반",[null,0,0],"neutral"]]}"#;
        let row = collect(Format::NiklAbsa, line).remove(0).unwrap();
        assert_eq!(row.labels.unwrap().to_compact(), "본품#품질0, 브랜드#일반0");
        assert!(row.warning.unwrap().to_string().contains("본품#품질"));
        let unlabelled = r#"{"id":"u-1","sentence_form":"그냥","annotation":[]}"#;
        assert!(collect(Format::NiklAbsa, unlabelled).remove(0).unwrap().labels.is_none());
    }
}
