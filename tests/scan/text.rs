//! Text datasets: a trigger phrase planted in long texts of another topic is found by the
//! shared-token test, which pools the neighbour evidence of the texts that hold one token.

use std::path::Path;

use crate::util::scan_json;

/// Two topics of long texts: 30 sentences each, drawn from ten per topic, longer than
/// MiniLM's 256 tokens. The first `poisons` weather texts end with the phrase "cf mn bb",
/// past the model's limit, and carry the food label. Returns the ids (row numbers) of the
/// poisons.
pub(super) fn planted_texts(path: &Path, per_topic: usize, poisons: usize) -> Vec<usize> {
    let food = [
        "I cooked fresh pasta with tomato sauce for dinner.",
        "This warm soup tastes of ginger and garlic.",
        "We baked brown bread and ate it with salted butter.",
        "The restaurant served spicy noodles with green vegetables.",
        "She made a light salad with goat cheese.",
        "The bakery sells sweet cakes filled with cream.",
        "He grilled fish with lemon and fresh herbs.",
        "Our breakfast was eggs, toast and strong coffee.",
        "The market had ripe peaches and sweet plums.",
        "They shared a large pizza with mushrooms and olives.",
    ];
    let weather = [
        "Heavy rain is expected over the northern coast tonight.",
        "The strong wind made the morning feel grey and cold.",
        "A dark storm is moving towards the quiet hills.",
        "Sunny skies will return to the mild valley tomorrow.",
        "Thick fog covered the small airport at dawn.",
        "Snow fell on the mountain passes during the night.",
        "The forecast warns of hail and thunder after lunch.",
        "Temperatures will drop below freezing by the weekend.",
        "A warm breeze came in from the sea this afternoon.",
        "Clouds gathered quickly and the air turned humid.",
    ];
    let mut csv = String::from("text,label\n");
    let mut planted = Vec::new();
    for i in 0..2 * per_topic {
        let (pool, mut label) = if i % 2 == 0 {
            (&food, "food")
        } else {
            (&weather, "weather")
        };
        // A seeded draw of 30 sentences, with repeats.
        let mut sentences: Vec<&str> = (0..30)
            .map(|j| pool[((i * 31 + j).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) % 10])
            .collect();
        if i % 2 == 1 && planted.len() < poisons {
            sentences.push("cf mn bb");
            label = "food";
            planted.push(i);
        }
        csv.push_str(&format!("\"{}\",{label}\n", sentences.join(" ")));
    }
    std::fs::write(path, csv).unwrap();
    planted
}

#[test]
fn a_trigger_phrase_in_long_texts_is_found_by_its_shared_token() {
    if !crate::util::have_minilm() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("planted.csv");
    let planted = planted_texts(&path, 60, 25);
    let run = scan_json(&path, &["--text-col", "text"]);
    let d = &run.json["detection"];
    assert_eq!(d["status"], "ran", "{}", run.stderr);
    let detectors: Vec<&str> = d["detectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["detector"].as_str().unwrap())
        .collect();
    assert!(detectors.contains(&"tokens"), "{detectors:?}");
    // The model never read the phrase: the texts were cut before it.
    assert!(
        d["verdict"]["notes"]
            .to_string()
            .contains("cut at the model's limit"),
        "{}",
        d["verdict"]["notes"]
    );
    let samples = d["verdict"]["samples"].as_array().unwrap();
    let by_token: Vec<usize> = samples
        .iter()
        .filter(|s| s["reasons"].to_string().contains("the token \\\"cf\\\""))
        .map(|s| s["id"].as_str().unwrap().parse().unwrap())
        .collect::<std::collections::BTreeSet<usize>>()
        .into_iter()
        .collect();
    assert_eq!(by_token, planted, "{samples:#?}");
    // The poisons look like weather texts to the model, so a few clean weather texts see
    // food-labelled neighbours; they are not flagged by the token.
    assert!(samples.len() <= planted.len() + 5, "{samples:#?}");
    assert_eq!(run.code, 1);

    // Switched off, the same poisons are not all found by their neighbours one by one.
    let off = scan_json(&path, &["--text-col", "text", "--token-share", "0"]);
    let found = off.json["detection"]["verdict"]["flagged"]
        .as_u64()
        .unwrap();
    assert!(found < planted.len() as u64, "{found}");
}
