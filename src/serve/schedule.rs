//! Which work the model thread runs next: one step of at most a budget of token-passes,
//! filled round-robin from every waiting request, so a large request is cut into
//! steps interleaved with everyone else's and a one-sentence request never waits for
//! more than a step. A pure function over what each request has left, tested alone.

/// What one request has left, in review order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Left {
    /// The cost bound of each review not yet through its keyword and sentiment passes.
    pub to_stage: Vec<u64>,
    /// Reviews through their passes with words left to mask: (review, words, cost of one).
    pub to_mask: Vec<(usize, usize, u64)>,
}

/// One piece of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// The passes of the request's next review not yet staged.
    Stage,
    /// The next `words` words of this review.
    Mask { review: usize, words: usize },
}

/// Shares of the step a request takes per round: small enough that every waiting
/// request gets into the step, large enough that one request's step is not shredded.
const ROUND_SHARE: u64 = 8;

/// What one request takes of a step per round.
pub fn quantum(budget: u64) -> u64 {
    (budget / ROUND_SHARE).max(1)
}

/// The units of the next step, as (request, unit), for requests in the order given
/// (the caller rotates it between steps). At least one unit, even one above budget.
pub fn plan(requests: &[Left], budget: u64) -> Vec<(usize, Unit)> {
    let quantum = quantum(budget);
    let mut left: Vec<Left> = requests.to_vec();
    let mut picked = Vec::new();
    let mut spent = 0u64;
    loop {
        let mut progressed = false;
        for (r, request) in left.iter_mut().enumerate() {
            if spent >= budget && !picked.is_empty() {
                return picked;
            }
            let Some((unit, cost)) = take_one(request, quantum.min(budget.saturating_sub(spent).max(1)))
            else {
                continue;
            };
            picked.push((r, unit));
            spent += cost;
            progressed = true;
        }
        if !progressed {
            return picked;
        }
    }
}

/// A request's next unit of at most about `room` token-passes: masking first, so a
/// review that has started is finished before the next one starts.
fn take_one(request: &mut Left, room: u64) -> Option<(Unit, u64)> {
    if let Some((review, words, per_word)) = request.to_mask.first_mut() {
        let n = ((room / (*per_word).max(1)) as usize).clamp(1, *words);
        let unit = Unit::Mask { review: *review, words: n };
        let cost = n as u64 * *per_word;
        *words -= n;
        if *words == 0 {
            request.to_mask.remove(0);
        }
        return Some((unit, cost));
    }
    if request.to_stage.is_empty() {
        return None;
    }
    Some((Unit::Stage, request.to_stage.remove(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage_only(costs: &[u64]) -> Left {
        Left { to_stage: costs.to_vec(), to_mask: Vec::new() }
    }

    #[test]
    fn a_small_request_gets_into_the_step_beside_a_large_one() {
        let big = Left { to_stage: vec![5_000; 64], to_mask: vec![(0, 250, 256)] };
        let small = stage_only(&[300]);
        let step = plan(&[big, small], 16_384);
        assert!(step.contains(&(1, Unit::Stage)), "{step:?}");
        let big_masks: usize = step
            .iter()
            .filter_map(|(r, u)| match (r, u) {
                (0, Unit::Mask { words, .. }) => Some(*words),
                _ => None,
            })
            .sum();
        assert!(big_masks * 256 <= 16_384 + 2_048, "the big request keeps to the budget: {big_masks}");
        assert!(big_masks > 0);
    }

    #[test]
    fn a_step_stops_at_the_budget_but_never_runs_empty() {
        assert_eq!(plan(&[stage_only(&[50_000, 50_000])], 16_384), vec![(0, Unit::Stage)]);
        let step = plan(&[stage_only(&[1_000; 40])], 16_384);
        assert_eq!(step.len(), 17, "16 fill the budget, the 17th is taken before the check: {}", step.len());
        assert!(plan(&[Left::default()], 100).is_empty());
    }

    #[test]
    fn masking_a_started_review_comes_before_staging_the_next() {
        let request = Left { to_stage: vec![100], to_mask: vec![(3, 2, 10)] };
        let step = plan(&[request], 1_000);
        assert_eq!(step, vec![(0, Unit::Mask { review: 3, words: 2 }), (0, Unit::Stage)]);
    }

    #[test]
    fn each_waiting_request_gets_a_turn_in_each_round() {
        let step = plan(&[stage_only(&[10; 3]), stage_only(&[10; 3]), stage_only(&[10])], 45);
        let order: Vec<usize> = step.iter().map(|(r, _)| *r).collect();
        assert_eq!(order, vec![0, 1, 2, 0, 1]);
    }
}
