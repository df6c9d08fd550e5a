//! A stable sort for the handful of items the gateway orders per request (deployments, signed headers, query
//! pairs). The standard library's sort is instantiated as several kilobytes of wasm per element type, a cost paid
//! in every cold start; these lists hold a few to a few dozen items, where insertion sort is as fast.

use std::cmp::Ordering;

/// Sorts `items` by `cmp`, keeping equal items in their original order.
pub fn sort_by<T>(items: &mut [T], mut cmp: impl FnMut(&T, &T) -> Ordering) {
    for i in 1..items.len() {
        let mut j = i;
        while j > 0 && cmp(&items[j - 1], &items[j]) == Ordering::Greater {
            items.swap(j - 1, j);
            j -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn agrees_with_the_standard_stable_sort(v in proptest::collection::vec((0u8..8, any::<u16>()), 0..64)) {
            let mut ours = v.clone();
            sort_by(&mut ours, |a, b| a.0.cmp(&b.0));
            let mut std = v;
            std.sort_by_key(|a| a.0);
            prop_assert_eq!(ours, std);
        }
    }
}
