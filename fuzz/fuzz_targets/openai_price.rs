//! `PriceRule::price` on arbitrary bytes: the body of a request to a metered route, priced before
//! any invoice is made.
//!
//! Checks that it never panics, that a priced request costs at least the rule's `min_sats` and
//! never prices more output than the ceiling allows, and that the same body is priced the same
//! twice.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use plannt_meter::PriceRule;

fn rule() -> &'static PriceRule {
    static RULE: OnceLock<PriceRule> = OnceLock::new();
    RULE.get_or_init(|| {
        let rule: PriceRule = serde_json::from_str(
            r#"{"per":"openai-tokens","models":{
                "gpt-4o-mini":{"input_per_1k":2,"output_per_1k":8},
                "o":{"input_per_1k":0.15,"output_per_1k":0.6}},
                "default_max_tokens":64,"max_tokens_ceiling":256,"min_sats":1}"#,
        )
        .expect("the rule reads");
        rule.check().expect("the rule is valid");
        rule.load_tokenizers();
        rule
    })
}

fuzz_target!(|data: &[u8]| {
    let rule = rule();
    let first = rule.price(data);
    if let Ok(quote) = &first {
        assert!(quote.sats >= 1, "below min_sats: {quote:?}");
        assert!(rule.models.contains_key(&quote.model), "an unknown model priced: {quote:?}");
    }
    assert_eq!(first, rule.price(data), "the same body priced twice differently");
});
