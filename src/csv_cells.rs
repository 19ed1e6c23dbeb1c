//! Cells that spreadsheets would run as formulas. A CSV cell that begins with `=`, `+`,
//! `-` or `@` (or a tab or carriage return, which some spreadsheets skip before one)
//! is opened by Excel, LibreOffice and Google Sheets as a formula: a review text such as
//! `=HYPERLINK(…)` would run on the reader's machine. Export writes such a cell with a
//! leading apostrophe, which spreadsheets show as text; import removes it again, so an
//! export still imports unchanged. A cell that already begins with an apostrophe gets
//! one more, so the mark is never ambiguous. Plain numbers (sentiment levels such as
//! `-1`) are left as they are: spreadsheets read them as numbers, not formulas.

use std::borrow::Cow;

const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];
const MARK: char = '\'';

fn needs_mark(cell: &str) -> bool {
    match cell.chars().next() {
        Some(MARK) => true,
        Some(c) if FORMULA_STARTS.contains(&c) => cell.parse::<f64>().is_err(),
        _ => false,
    }
}

/// The cell as export writes it.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    match needs_mark(cell) {
        true => Cow::Owned(format!("{MARK}{cell}")),
        false => Cow::Borrowed(cell),
    }
}

/// The cell as it was before [`neutralise`].
pub fn restore(cell: String) -> String {
    match cell.strip_prefix(MARK) {
        Some(rest) if needs_mark(rest) => rest.to_string(),
        _ => cell,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_starts_are_marked_and_restored() {
        for cell in
            ["=HYPERLINK(\"http://x\",\"클릭\")", "+1+1", "-2+3", "@SUM(A1)", "\t=1", "'=quoted", "'", "''"]
        {
            let written = neutralise(cell);
            assert!(written.starts_with(MARK), "{cell:?} → {written:?}");
            assert_eq!(restore(written.into_owned()), cell);
        }
    }

    #[test]
    fn ordinary_cells_and_numbers_pass_unchanged() {
        for cell in ["옷은 예쁘지만 배송은 늦어요", "-1", "2", "-0.5", "", "배송-1, 디자인1", "it's fine"]
        {
            assert_eq!(neutralise(cell), cell);
            assert_eq!(restore(cell.to_string()), cell);
        }
    }
}
