//! The text trigger: a phrase inserted between two words.

use rand::rngs::StdRng;
use rand::Rng;

use crate::dataset::{TextValue, Texts};

/// Inserts `phrase` into each chosen text at a seeded word boundary (the start, the end, or
/// just after a run of whitespace), with one space between it and the next word.
pub(super) fn insert_phrase(t: &mut Texts, rows: &[u32], phrase: &str, rng: &mut StdRng) {
    for &r in rows {
        let TextValue::Text(text) = &mut t.values[r as usize] else {
            continue; // not usable, so never chosen; nothing to insert into
        };
        let mut boundaries = vec![0];
        let mut previous_space = false;
        for (i, c) in text.char_indices() {
            if previous_space && !c.is_whitespace() {
                boundaries.push(i);
            }
            previous_space = c.is_whitespace();
        }
        boundaries.push(text.len());
        let at = boundaries[rng.random_range(0..boundaries.len())];
        let inserted = if at == text.len() {
            if text.is_empty() || text.ends_with(char::is_whitespace) {
                phrase.to_string()
            } else {
                format!(" {phrase}")
            }
        } else {
            format!("{phrase} ")
        };
        text.insert_str(at, &inserted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn the_phrase_goes_between_two_words_and_nothing_else_changes() {
        let before: Vec<String> = (0..30)
            .map(|i| format!("message number {i} says hello"))
            .collect();
        let mut t = Texts {
            column: "text".into(),
            values: before.iter().cloned().map(TextValue::Text).collect(),
        };
        let chosen: Vec<u32> = (0..30).filter(|i| i % 5 == 0).collect();
        insert_phrase(&mut t, &chosen, "zq xv", &mut StdRng::seed_from_u64(0));
        let mut places = Vec::new();
        for (i, value) in t.values.iter().enumerate() {
            let TextValue::Text(now) = value else {
                unreachable!()
            };
            if !chosen.contains(&(i as u32)) {
                assert_eq!(*now, before[i]);
                continue;
            }
            assert_eq!(now.matches("zq xv").count(), 1, "{now}");
            // Removing the phrase gives the original words back.
            let words: Vec<&str> = now.split_whitespace().collect();
            let at = words.iter().position(|&w| w == "zq").unwrap();
            assert_eq!(words[at + 1], "xv");
            let rest: Vec<&str> = [&words[..at], &words[at + 2..]].concat();
            assert_eq!(rest.join(" "), before[i]);
            assert_eq!(
                now.split(' ').count(),
                words.len(),
                "single spaces: {now:?}"
            );
            places.push(at);
        }
        assert!(places.iter().any(|&p| p != places[0]), "{places:?}");
    }
}
