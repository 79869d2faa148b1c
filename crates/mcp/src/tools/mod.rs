//! The four tools, one file each, like the commands of a small server: `fetch` (call a URL and
//! pay its price), `discover` (a server's prices, free), `balance` and `spending` (read-only).
//! Each file holds the tool's arguments, its description for the model, and its body; each adds
//! its own router, which `PlanntMcp::new` joins.

mod arguments;
pub mod balance;
pub mod discover;
pub mod fetch;
pub mod spending;

#[cfg(test)]
mod tests {
    use rmcp::handler::server::tool::schema_for_input;
    use serde_json::json;

    use super::discover::DiscoverArgs;
    use super::fetch::FetchArgs;
    use super::spending::SpendingArgs;

    #[test]
    fn argument_schemas_are_plain_json_schema() {
        let fetch = schema_for_input::<FetchArgs>().unwrap();
        assert_eq!(fetch["required"], json!(["url"]));
        assert_eq!(fetch["additionalProperties"], json!(false));
        assert_eq!(fetch["properties"]["max_sats"]["type"], "integer");
        for schema in [
            fetch,
            schema_for_input::<DiscoverArgs>().unwrap(),
            schema_for_input::<SpendingArgs>().unwrap(),
        ] {
            let text = serde_json::to_string(&*schema).unwrap();
            // Optional, not nullable: a `["integer", "null"]` type is lost on some model APIs.
            assert!(!text.contains("\"null\""), "{text}");
        }
    }
}
