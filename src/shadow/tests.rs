use super::*;
use crate::canonical::FinishReason;

const OPENAI_WHOLE: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hello  there, World!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}"#;
const ANTHROPIC_WHOLE: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"hello there, world!"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":4}}"#;

fn openai_stream(text: &[&str], finish: &str) -> String {
    let mut s = String::new();
    for t in text {
        s.push_str(&format!(
            "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{}}},\"finish_reason\":null}}]}}\n\n",
            serde_json::to_string(t).unwrap()
        ));
    }
    s.push_str(&format!("data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"{finish}\"}}]}}\n\ndata: [DONE]\n\n"));
    s
}

#[test]
fn answers_read_back_from_either_wire_whole_or_streamed() {
    let a = read_answer(Wire::OpenAi, false, OPENAI_WHOLE.as_bytes()).unwrap();
    assert_eq!(a.text, "Hello  there, World!");
    assert_eq!(a.finish, Some(FinishReason::Stop));
    assert_eq!(a.usage.unwrap().output_tokens, 3);
    let b = read_answer(Wire::Anthropic, false, ANTHROPIC_WHOLE.as_bytes()).unwrap();
    assert_eq!(b.text, "hello there, world!");
    let s = read_answer(
        Wire::OpenAi,
        true,
        openai_stream(&["Hello", " there"], "stop").as_bytes(),
    )
    .unwrap();
    assert_eq!(s.text, "Hello there");
    assert_eq!(s.finish, Some(FinishReason::Stop));
    // An error body, and a stream cut before it said how it ended, are not answers.
    assert!(read_answer(Wire::OpenAi, false, br#"{"error":{"message":"x"}}"#).is_none());
    let cut = openai_stream(&["Hello"], "stop");
    let cut = &cut[..cut.find("\"finish_reason\":\"stop\"").unwrap() - 60];
    assert!(read_answer(Wire::OpenAi, true, cut.as_bytes()).is_none());
}

#[test]
fn agreement_normalises_text_and_scores_words() {
    let a = read_answer(Wire::OpenAi, false, OPENAI_WHOLE.as_bytes()).unwrap();
    let b = read_answer(Wire::Anthropic, false, ANTHROPIC_WHOLE.as_bytes()).unwrap();
    let same = agreement(&a, &b, false);
    assert!(same.exact, "case and whitespace runs do not count");
    assert_eq!(same.similarity, 1.0);
    assert!(same.finish);
    assert_eq!(same.tools, None);
    assert_eq!(same.json, None);
    let other = Answer {
        text: "hello moon".into(),
        finish: Some(FinishReason::Length),
        ..Answer::default()
    };
    let d = agreement(&a, &other, false);
    assert!(!d.exact && !d.finish);
    // {hello, there, world} against {hello, moon}: 2·1 / (3 + 2).
    assert!((d.similarity - 0.4).abs() < 1e-12, "{}", d.similarity);
    let nothing = Answer {
        text: "zzz".into(),
        ..Answer::default()
    };
    assert_eq!(agreement(&a, &nothing, false).similarity, 0.0);
}

#[test]
fn tool_calls_agree_on_names_and_json_equal_arguments_in_any_order() {
    let calls = |c: &[(&str, &str)]| Answer {
        tools: c
            .iter()
            .map(|(n, a)| (n.to_string(), a.to_string()))
            .collect(),
        ..Answer::default()
    };
    let a = calls(&[
        ("get_weather", r#"{"city":"Paris","unit":"c"}"#),
        ("time", "{}"),
    ]);
    let b = calls(&[
        ("time", " { } "),
        ("get_weather", r#"{ "unit": "c", "city": "Paris" }"#),
    ]);
    assert_eq!(agreement(&a, &b, false).tools, Some(true));
    let c = calls(&[
        ("get_weather", r#"{"city":"Lyon","unit":"c"}"#),
        ("time", "{}"),
    ]);
    assert_eq!(agreement(&a, &c, false).tools, Some(false));
    let d = calls(&[("get_weather", r#"{"city":"Paris","unit":"c"}"#)]);
    assert_eq!(agreement(&a, &d, false).tools, Some(false));
    assert_eq!(agreement(&a, &Answer::default(), false).tools, Some(false));
}

#[test]
fn json_validity_is_judged_only_for_structured_requests() {
    let json = Answer {
        text: " {\"a\": 1} ".into(),
        ..Answer::default()
    };
    let prose = Answer {
        text: "Sure! {\"a\": 1}".into(),
        ..Answer::default()
    };
    assert_eq!(agreement(&json, &prose, true).json, Some((true, false)));
    assert_eq!(agreement(&json, &prose, false).json, None);
}

#[test]
fn sampling_is_a_stable_function_of_the_request_and_hits_its_share() {
    let bodies: Vec<Vec<u8>> = (0..4000)
        .map(|i| format!("{{\"n\":{i}}}").into_bytes())
        .collect();
    let hits = bodies.iter().filter(|b| sampled("b", b, 0.1)).count();
    assert!((360..=440).contains(&hits), "{hits} of 4000 at 10%");
    for b in &bodies[..50] {
        assert_eq!(sampled("b", b, 0.1), sampled("b", b, 0.1));
        assert!(sampled("b", b, 1.0));
    }
    // Another shadow of the same model samples independently.
    let both = bodies
        .iter()
        .filter(|b| sampled("b", b, 0.5) && sampled("c", b, 0.5))
        .count();
    assert!((850..=1150).contains(&both), "{both}");
}

#[test]
fn arms_are_sticky_and_split_by_share() {
    let shares = [0.9, 0.1];
    let on_b = (0..10_000)
        .filter(|u| arm_of("exp", &format!("user-{u}"), &shares) == 1)
        .count();
    assert!((900..=1100).contains(&on_b), "{on_b}");
    for u in 0..100 {
        let id = format!("user-{u}");
        assert_eq!(arm_of("exp", &id, &shares), arm_of("exp", &id, &shares));
    }
    assert_eq!(arm_of("exp", "x", &[1.0]), 0);
}

fn side(ttft: u64, cost: f64, error: Option<&str>) -> Side {
    Side {
        ttft_ms: Some(ttft),
        total_ms: Some(ttft * 2),
        input_tokens: 10,
        output_tokens: 5,
        cost_usd: Some(cost),
        error: error.map(str::to_owned),
    }
}

#[test]
fn pair_statistics_per_day_with_percentiles_rates_skips_and_newest_samples_first() {
    let agree = |exact: bool, tools: Option<bool>| Agreement {
        exact,
        similarity: if exact { 1.0 } else { 0.5 },
        tools,
        finish: true,
        json: None,
    };
    let pair = |ttft: u64, a: Option<Agreement>, at: u64| StoredOutcome {
        day: "2026-12-07".into(),
        key: "k".into(),
        outcome: Outcome::Pair {
            primary: "a".into(),
            shadow: "b".into(),
            primary_side: side(100, 0.001, None),
            shadow_side: side(ttft, 0.002, a.is_none().then_some("upstream_error")),
            agreement: a,
            reserved_usd: 0.01,
            sample: Some(Sample {
                at,
                primary: "p".into(),
                shadow: "s".into(),
            }),
            keep_samples: 2,
        },
    };
    let mut outcomes: Vec<StoredOutcome> = (1..=10)
        .map(|i| pair(i * 10, Some(agree(i <= 7, (i <= 2).then_some(i == 1))), i))
        .collect();
    outcomes.push(pair(500, None, 11));
    outcomes.push(StoredOutcome {
        day: "2026-12-07".into(),
        key: "k".into(),
        outcome: Outcome::Skipped {
            primary: "a".into(),
            shadow: "b".into(),
            reason: Skip::Residency,
        },
    });
    let stats = pair_stats(&outcomes);
    assert_eq!(stats.len(), 1);
    let s = &stats[0];
    assert_eq!(s.requests, 11);
    assert_eq!(s.skipped.get("residency"), Some(&1));
    assert_eq!(s.shadow_side.errors, 1);
    // 10, 20, …, 100 and 500: the 6th and the 10th of 11.
    assert_eq!(s.shadow_side.ttft_ms.p50, Some(60));
    assert_eq!(s.shadow_side.ttft_ms.p90, Some(100));
    assert_eq!(s.primary_side.ttft_ms.p50, Some(100));
    assert!((s.shadow_side.cost_usd - 0.022).abs() < 1e-12);
    assert_eq!(s.agreement.compared, 10);
    assert_eq!(s.agreement.exact.rate, Some(0.7));
    assert_eq!(s.agreement.tool_calls.of, 2);
    assert_eq!(s.agreement.tool_calls.rate, Some(0.5));
    assert_eq!(s.agreement.json_valid_shadow.rate, None);
    assert_eq!(s.samples.first().map(|x| x.at), Some(11));
}

#[test]
fn arm_statistics_per_experiment_and_arm() {
    let arm = |arm: &str, ttft: u64| StoredOutcome {
        day: "2026-12-07".into(),
        key: "k".into(),
        outcome: Outcome::Arm {
            experiment: "demo".into(),
            arm: arm.into(),
            side: side(ttft, 0.001, None),
        },
    };
    let outcomes = vec![arm("a", 10), arm("a", 30), arm("b", 50), arm("a", 20)];
    let stats = arm_stats(&outcomes);
    assert_eq!(stats.len(), 2);
    assert_eq!((stats[0].arm.as_str(), stats[0].requests), ("a", 3));
    assert_eq!(stats[0].stats.ttft_ms.p50, Some(20));
    assert_eq!(stats[1].stats.ttft_ms.p90, Some(50));
    // A stored outcome reads back as it was written.
    let json = serde_json::to_string(&outcomes[0]).unwrap();
    assert_eq!(
        serde_json::from_slice::<StoredOutcome>(json.as_bytes()).unwrap(),
        outcomes[0]
    );
}
