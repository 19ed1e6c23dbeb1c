//! Shares of a round per mall / category group, in proportion to the pool.

/// Splits `total` over groups in proportion to their sizes (largest remainder), never
/// giving a group more than it has. Ties go to the larger group, then the earlier one.
pub fn allocate(total: usize, group_sizes: &[usize]) -> Vec<usize> {
    let pool: usize = group_sizes.iter().sum();
    if pool == 0 {
        return vec![0; group_sizes.len()];
    }
    let total = total.min(pool);
    let mut quotas: Vec<usize> = group_sizes.iter().map(|&g| total * g / pool).collect();
    let mut order: Vec<usize> = (0..group_sizes.len()).collect();
    // Remainders compared exactly as fractions with the common denominator `pool`.
    order.sort_by_key(|&i| {
        (std::cmp::Reverse((total * group_sizes[i]) % pool), std::cmp::Reverse(group_sizes[i]), i)
    });
    let mut left = total - quotas.iter().sum::<usize>();
    for &i in order.iter().cycle().take(order.len() * 2) {
        if left == 0 {
            break;
        }
        if quotas[i] < group_sizes[i] {
            quotas[i] += 1;
            left -= 1;
        }
    }
    quotas
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation_follows_group_sizes_and_sums_to_the_total() {
        assert_eq!(allocate(10, &[50, 30, 20]), vec![5, 3, 2]);
        assert_eq!(allocate(10, &[1, 1, 1]).iter().sum::<usize>(), 3);
        let q = allocate(7, &[10, 10, 10]);
        assert_eq!(q.iter().sum::<usize>(), 7);
        assert!(q.iter().all(|&x| x == 2 || x == 3));
        assert_eq!(allocate(5, &[]), Vec::<usize>::new());
    }

    #[test]
    fn small_groups_are_not_overdrawn() {
        assert_eq!(allocate(10, &[100, 1]), vec![10, 0]);
        assert_eq!(allocate(100, &[3, 4]), vec![3, 4]);
    }
}
