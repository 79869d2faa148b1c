//! Counting tokens with OpenAI's tokenizers, and a chat the way OpenAI counts it: 3 tokens of
//! framing per message, its role and content, 1 more and the name's for a `name`, and 3 that
//! prime the reply (the OpenAI cookbook, "How to count tokens with tiktoken").

use serde::{Deserialize, Serialize};
use tiktoken_rs::CoreBPE;
use tiktoken_rs::tokenizer::{Tokenizer, get_tokenizer};

use crate::openai::ChatRequest;

/// Tokens of framing around each message.
const PER_MESSAGE: u64 = 3;
/// The extra token a message's `name` costs.
const PER_NAME: u64 = 1;
/// The tokens that prime the assistant's reply, once per chat.
const REPLY_PRIMING: u64 = 3;
/// The extra token each tool call of an assistant message costs.
const PER_TOOL_CALL: u64 = 1;

/// One of OpenAI's tokenizers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// `o200k_base`: GPT-4o, GPT-4.1, GPT-5, the o-series.
    O200kBase,
    /// `cl100k_base`: GPT-4 and GPT-3.5 Turbo.
    Cl100kBase,
}

impl Encoding {
    /// The tokenizer OpenAI uses for `model`; `o200k_base`, that of every current model, for a
    /// name it does not know.
    pub fn for_model(model: &str) -> Encoding {
        match get_tokenizer(model) {
            Some(Tokenizer::Cl100kBase) => Encoding::Cl100kBase,
            _ => Encoding::O200kBase,
        }
    }

    /// Its name, as OpenAI's tiktoken spells it.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::Cl100kBase => "cl100k_base",
        }
    }

    fn bpe(self) -> &'static CoreBPE {
        match self {
            Encoding::O200kBase => tiktoken_rs::o200k_base_singleton(),
            Encoding::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
        }
    }

    /// Loads the tokenizer's table now (tens of milliseconds, once per process) rather than on
    /// the first request that needs it.
    pub fn load(self) {
        let _ = self.bpe();
    }

    /// The tokens of `text`, as ordinary text: a special token's spelling inside a message is
    /// text to the API too.
    pub fn count(self, text: &str) -> u64 {
        self.bpe().encode_ordinary(text).len() as u64
    }

    /// The words of `text` cut to at most `max` tokens, and how many tokens that is.
    pub fn truncate(self, text: &str, max: u64) -> (String, u64) {
        let mut out = String::new();
        let mut used = 0;
        for word in text.split_whitespace() {
            let candidate = if out.is_empty() {
                word.to_string()
            } else {
                format!("{out} {word}")
            };
            let tokens = self.count(&candidate);
            if tokens > max {
                break;
            }
            (out, used) = (candidate, tokens);
        }
        (out, used)
    }

    /// The prompt tokens of a chat: every message with its framing, the tool definitions as
    /// their JSON text, and the reply's priming.
    pub fn count_chat(self, chat: &ChatRequest) -> u64 {
        let mut tokens = REPLY_PRIMING;
        for message in &chat.messages {
            tokens += PER_MESSAGE + self.count(&message.role) + self.count(&message.content);
            if let Some(name) = &message.name {
                tokens += PER_NAME + self.count(name);
            }
            for (name, arguments) in &message.tool_calls {
                tokens += PER_TOOL_CALL + self.count(name) + self.count(arguments);
            }
        }
        if let Some(tools) = &chat.tools_text {
            tokens += self.count(tools);
        }
        tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_as_openai_tokenizers_do() {
        // Reference counts of OpenAI's tiktoken (Python) for the same text.
        assert_eq!(Encoding::O200kBase.count("hello world"), 2);
        assert_eq!(Encoding::Cl100kBase.count("hello world"), 2);
        assert_eq!(
            Encoding::Cl100kBase.count("tiktoken is great!"),
            6,
            "the cookbook's example"
        );
        assert_eq!(Encoding::O200kBase.count(""), 0);
        // A special token's spelling is ordinary text: more than one token.
        assert!(Encoding::O200kBase.count("<|endoftext|>") > 1);
    }

    #[test]
    fn models_name_their_tokenizer() {
        assert_eq!(Encoding::for_model("gpt-4o-mini"), Encoding::O200kBase);
        assert_eq!(Encoding::for_model("gpt-4"), Encoding::Cl100kBase);
        assert_eq!(Encoding::for_model("gpt-3.5-turbo"), Encoding::Cl100kBase);
        assert_eq!(Encoding::for_model("my-local-llama"), Encoding::O200kBase);
    }

    #[test]
    fn a_chat_counts_framing_per_message_and_the_reply_priming() {
        let body = br#"{"model":"gpt-4o-mini","messages":[
            {"role":"system","content":"You are terse."},
            {"role":"user","content":"hello world","name":"ana"}]}"#;
        let chat = ChatRequest::parse(body).unwrap();
        let e = Encoding::O200kBase;
        let expected = 3
            + (3 + e.count("system") + e.count("You are terse."))
            + (3 + e.count("user") + e.count("hello world") + 1 + e.count("ana"));
        assert_eq!(e.count_chat(&chat), expected);
        // The OpenAI cookbook's figure for one short message on gpt-4o-class models.
        let one = ChatRequest::parse(
            br#"{"model":"m","messages":[{"role":"user","content":"hello world"}]}"#,
        )
        .unwrap();
        assert_eq!(e.count_chat(&one), 3 + 3 + 1 + 2);
    }

    #[test]
    fn truncation_keeps_whole_words_within_the_budget() {
        let e = Encoding::O200kBase;
        let text = "the quick brown fox jumps over the lazy dog";
        let (cut, used) = e.truncate(text, 4);
        assert_eq!(cut, "the quick brown fox");
        assert_eq!(used, e.count(&cut));
        assert!(used <= 4);
        assert_eq!(e.truncate(text, 0), (String::new(), 0));
        assert_eq!(e.truncate(text, 1000).0, text);
    }
}
