//! What pricing a request costs the gateway: the tokenizer and the whole price rule, on a short
//! chat, a long one and a long single prompt (o200k_base).
//!
//! `cargo bench -p plannt-meter --bench tokenize`; the numbers go into `docs/benchmarks.md`.

// criterion_group! writes a public function that cannot carry a doc comment.
#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use plannt_meter::{ChatRequest, Encoding, PriceRule};

/// Some English prose, repeated to the lengths measured.
const PROSE: &str = "The gateway prices each request before it runs: it counts the prompt with the \
model's own tokenizer, adds the most output the request allows, and asks for that many sats. ";

fn chat(words_per_message: usize, messages: usize) -> Vec<u8> {
    let text: String = PROSE
        .split_whitespace()
        .cycle()
        .take(words_per_message)
        .collect::<Vec<_>>()
        .join(" ");
    let list: Vec<serde_json::Value> = (0..messages)
        .map(|i| {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            serde_json::json!({ "role": role, "content": text })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "model": "gpt-4o-mini",
        "messages": list,
        "max_tokens": 512,
    }))
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let rule: PriceRule = serde_json::from_str(
        r#"{"per":"openai-tokens","models":{"gpt-4o-mini":{"input_per_1k":2,"output_per_1k":8}}}"#,
    )
    .unwrap();
    // Once per process, at start: loading o200k_base's table (not a request's cost).
    let started = std::time::Instant::now();
    rule.load_tokenizers();
    eprintln!("load/o200k_base: {:?} (once, at start)", started.elapsed());
    let mut group = c.benchmark_group("price");
    // A chat of one short question; a conversation of 20 messages of 200 words (~5,000
    // tokens); one prompt of 20,000 words (~25,000 tokens).
    for (name, body) in [
        ("short", chat(12, 1)),
        ("chat-20x200", chat(200, 20)),
        ("prompt-20000", chat(20_000, 1)),
    ] {
        let tokens = rule.price(&body).unwrap().input_tokens;
        group.throughput(Throughput::Elements(tokens));
        group.bench_function(format!("rule/{name}"), |b| {
            b.iter(|| rule.price(std::hint::black_box(&body)).unwrap())
        });
        let parsed = ChatRequest::parse(&body).unwrap();
        group.bench_function(format!("count/{name}"), |b| {
            b.iter(|| Encoding::O200kBase.count_chat(std::hint::black_box(&parsed)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
