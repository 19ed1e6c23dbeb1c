//! Unlabelled review texts streamed from a file, for vocabulary trimming and
//! pre-training: one review per line, or a TSV whose header names a `text` column
//! (`../shared/data/nsmc/reviews.tsv.gz`: `rating movie_id text`); gzipped when the
//! name ends in `.gz`. Lines are read one at a time: a corpus is never all in memory.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::Context;

/// The texts of `path` in file order (empty ones skipped), with their line numbers.
pub struct Corpus {
    lines: std::io::Lines<Box<dyn BufRead + Send>>,
    /// The `text` column of a TSV; none for one review per line.
    column: Option<usize>,
    line: usize,
}

pub fn open(path: &Path) -> anyhow::Result<Corpus> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let reader: Box<dyn BufRead + Send> = match path.extension().is_some_and(|e| e == "gz") {
        true => Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(file))),
        false => Box::new(BufReader::new(file)),
    };
    let mut lines = reader.lines();
    let tsv = path.to_string_lossy().trim_end_matches(".gz").ends_with(".tsv");
    let (column, line) = match tsv {
        true => {
            let header = lines.next().transpose()?.unwrap_or_default();
            let column = header.split('\t').position(|c| c.trim() == "text");
            (Some(column.with_context(|| format!("{}: no `text` column in the header", path.display()))?), 1)
        }
        false => (None, 0),
    };
    Ok(Corpus { lines, column, line })
}

impl Iterator for Corpus {
    /// (line number from 1, text)
    type Item = anyhow::Result<(usize, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let line = match self.lines.next()? {
                Ok(line) => line,
                Err(e) => {
                    return Some(Err(anyhow::Error::from(e).context(format!("line {}", self.line + 1))))
                }
            };
            self.line += 1;
            let text = match self.column {
                Some(c) => line.split('\t').nth(c).unwrap_or_default(),
                None => line.as_str(),
            };
            let text = super::normalize(text);
            if !text.is_empty() {
                return Some(Ok((self.line, text)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_gzipped_tsv_yields_its_text_column_line_by_line() {
        let dir = std::env::temp_dir().join(format!("corpus-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("reviews.tsv.gz");
        let mut gz = flate2::write::GzEncoder::new(File::create(&path).unwrap(), flate2::Compression::fast());
        gz.write_all("rating\tmovie_id\ttext\n10\t1\t재밌어요\n1\t2\t\n3\t3\t별로 😡\n".as_bytes()).unwrap();
        gz.finish().unwrap();
        let texts: Vec<(usize, String)> = open(&path).unwrap().map(Result::unwrap).collect();
        assert_eq!(texts, [(2, "재밌어요".to_string()), (4, "별로 😡".to_string())]);
        std::fs::write(dir.join("plain.txt"), "하나\n\n둘\n").unwrap();
        let plain: Vec<String> = open(&dir.join("plain.txt")).unwrap().map(|r| r.unwrap().1).collect();
        assert_eq!(plain, ["하나", "둘"]);
        std::fs::write(dir.join("bad.tsv"), "a\tb\n1\t2\n").unwrap();
        assert!(open(&dir.join("bad.tsv")).err().unwrap().to_string().contains("no `text` column"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
