//! Fast highlights. Masking every word costs one forward pass per word. Under mean
//! pooling a keyword's logit is the mean of the head applied to each token's state, so
//! the keyword pass already says how much each token pushed each keyword up (its
//! "share"), at no extra cost. Summed per word, the shares rank the words; only the
//! best few per found keyword are then masked to measure their real drops. Shares
//! ignore how masking a word changes its neighbours' states, which is why the
//! candidates are verified by masking rather than reported as they are.

/// Which words of a review to mask: for each keyword in `keywords`, the
/// `per_keyword` words with the largest summed share; their union, in text order.
///
/// `spans`: the words (character spans); `token_starts`: each token's first character
/// (None for special tokens); `shares`: per token, per keyword.
pub fn candidates(
    spans: &[(usize, usize)],
    token_starts: &[Option<usize>],
    shares: &[Vec<f32>],
    keywords: &[usize],
    per_keyword: usize,
) -> Vec<usize> {
    let scores = word_scores(spans, token_starts, shares);
    let mut chosen: Vec<usize> = Vec::new();
    for &k in keywords {
        let mut ranked: Vec<usize> = (0..spans.len()).filter(|&w| scores[w].is_some()).collect();
        ranked.sort_by(|&a, &b| score(&scores[b], k).total_cmp(&score(&scores[a], k)).then(a.cmp(&b)));
        chosen.extend(ranked.into_iter().take(per_keyword));
    }
    chosen.sort_unstable();
    chosen.dedup();
    chosen
}

fn score(word: &Option<Vec<f32>>, keyword: usize) -> f32 {
    word.as_ref().and_then(|s| s.get(keyword)).copied().unwrap_or(f32::MIN)
}

/// Per word, the sum of its tokens' shares (None for a word no token starts in, such
/// as one cut off by truncation).
fn word_scores(
    spans: &[(usize, usize)],
    token_starts: &[Option<usize>],
    shares: &[Vec<f32>],
) -> Vec<Option<Vec<f32>>> {
    let mut scores: Vec<Option<Vec<f32>>> = vec![None; spans.len()];
    for (start, share) in token_starts.iter().zip(shares) {
        let Some(start) = *start else { continue };
        // Spans are sorted and disjoint: the word is the last one starting at or before.
        let w = spans.partition_point(|&(s, _)| s <= start);
        if w == 0 || start >= spans[w - 1].1 {
            continue;
        }
        let word = scores[w - 1].get_or_insert_with(|| vec![0.0; share.len()]);
        for (total, s) in word.iter_mut().zip(share) {
            *total += s;
        }
    }
    scores
}

#[cfg(test)]
mod tests {
    use super::*;

    // "옷은 예쁘지만 배송은 늦어요": words at 0..2, 3..7, 8..11, 12..15.
    const SPANS: [(usize, usize); 4] = [(0, 2), (3, 7), (8, 11), (12, 15)];

    #[test]
    fn the_words_whose_tokens_push_a_keyword_most_are_chosen() {
        // Tokens: <s>, 옷은, 예쁘, 지만, 배송, 은, 늦어요, </s>; keywords [디자인, 배송].
        let starts = [None, Some(0), Some(3), Some(5), Some(8), Some(10), Some(12), None];
        let shares = vec![
            vec![9.0, 9.0], // special tokens never count
            vec![0.2, 0.0],
            vec![1.5, -0.1],
            vec![0.6, 0.0], // 예쁘지만 = 2.1 for 디자인
            vec![0.0, 2.0],
            vec![0.0, 0.3], // 배송은 = 2.3 for 배송
            vec![-0.4, 0.9],
            vec![9.0, 9.0],
        ];
        assert_eq!(candidates(&SPANS, &starts, &shares, &[0], 1), vec![1]);
        assert_eq!(candidates(&SPANS, &starts, &shares, &[1], 2), vec![2, 3]);
        assert_eq!(candidates(&SPANS, &starts, &shares, &[0, 1], 1), vec![1, 2], "union, in text order");
        assert_eq!(candidates(&SPANS, &starts, &shares, &[], 3), Vec::<usize>::new());
    }

    #[test]
    fn words_cut_off_by_truncation_are_never_chosen() {
        let starts = [None, Some(0), Some(3), None];
        let shares = vec![vec![0.0], vec![-1.0], vec![-2.0], vec![0.0]];
        assert_eq!(candidates(&SPANS, &starts, &shares, &[0], 4), vec![0, 1]);
    }
}
