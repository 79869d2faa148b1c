#!/usr/bin/env bash
# Writes a small seed corpus for every fuzz target into fuzz/corpus/<target>/ (gitignored), from
# a real token minted by Aperture, hand-written headers and caveats, a URI of every Lightning
# backend, and invoices the dev network and LNbits issued. Safe to run again: it only adds files.
# Needs only coreutils.
set -euo pipefail
cd "$(dirname "$0")"

# A token minted by Aperture: location "lsat", a 66-byte identifier, caveats services=meme:0 and
# meme_capabilities=.
TOKEN='AgEEbHNhdAJCAAAwpHpumws6ufQoDwiTLNcge0QPUIWA0+tVY+tKPYAJ/zSfmEGlIpNm3VzxuzCqLhEp5KGiyPLUM9L+kcB7uzS+AAIPc2VydmljZXM9bWVtZTowAAISbWVtZV9jYXBhYmlsaXRpZXM9AAAGILA1VCEIExukt4nG+XR9tX8WJ2BVMiHG3UNt1uYJ+NRD'
URL_SAFE=$(printf '%s' "$TOKEN" | tr '+/' '-_' | tr -d '=')
PREIMAGE=$(printf '2a%.0s' $(seq 32))
INVOICE='lnbcrt210n1pjexample0000000000000000000000000000000000000000000000000'

seed() { # seed TARGET NAME, content on stdin
    mkdir -p "corpus/$1"
    cat >"corpus/$1/$2"
}

printf '%s' "$TOKEN" | base64 -d | seed macaroon_binary aperture
# The smallest macaroon: identifier "x", no caveats, a zero signature.
printf '\x02\x02\x01x\x00\x00\x06\x20%s' "$(head -c 32 /dev/zero | tr '\0' 'S')" | seed macaroon_binary minimal
# A third-party caveat: location, identifier, verification id.
printf '\x02\x02\x02id\x00\x01\x04auth\x02\x03cid\x04\x02vv\x00\x00\x06\x20%s' \
    "$(head -c 32 /dev/zero | tr '\0' 'S')" | seed macaroon_binary third_party

printf '%s' "$TOKEN" | seed macaroon_base64 standard
printf '%s' "$URL_SAFE" | seed macaroon_base64 url_safe_unpadded
printf '  %s\n' "$TOKEN" | seed macaroon_base64 whitespace

# Caveats that buy route `demo` (the harness re-signs them, so the zero signature does not matter).
DEMO=$(printf '\x02\x02\x01x\x00\x02\x0fservices=demo:0\x00\x02\x1bdemo_valid_until=2000000000\x00\x00\x06\x20%s' \
    "$(head -c 32 /dev/zero | tr '\0' 'S')" | base64 -w0)

printf 'L402 %s:%s' "$TOKEN" "$PREIMAGE" | seed credential l402
printf 'L402 %s:%s' "$DEMO" "$PREIMAGE" | seed credential demo
printf 'LSAT %s:%s' "$URL_SAFE" "$PREIMAGE" | seed credential lsat_url_safe
printf 'L402 %s,%s:%s' "$TOKEN" "$TOKEN" "$PREIMAGE" | seed credential two_macaroons
printf 'Basic dXNlcjpwYXNz\nLSAT %s:%s\nL402 %s:%s' "$TOKEN" "$PREIMAGE" "$TOKEN" "$PREIMAGE" \
    | seed credential several_headers

printf 'L402 macaroon="%s", invoice="%s"' "$TOKEN" "$INVOICE" | seed challenge l402
printf 'L402 version="0", token="%s", invoice="%s"' "$TOKEN" "$INVOICE" | seed challenge v2026
printf 'Bearer realm="x", error="invalid_token"\nLSAT macaroon=%s, invoice=%s' "$TOKEN" "$INVOICE" \
    | seed challenge lsat_unquoted
printf 'Basic realm="a\\"b", L402 macaroon="%s", invoice="%s"' "$TOKEN" "$INVOICE" \
    | seed challenge two_schemes_one_value

printf 'services=meme:0\nmeme_capabilities=' | seed caveat aperture
printf 'services=demo:0\ndemo_valid_until=2000000000\ndemo_max_tokens=100' | seed caveat plannt
printf 'services=demo:0,other:1\nservices=demo:0\ndemo_capabilities=read,write\ndemo_capabilities=read' \
    | seed caveat narrowing
printf 'services=demo:0\ndemo_valid_until=2000000000\ndemo_valid_until=1900000000' | seed caveat expiries

printf '%s' "$TOKEN" | base64 -d | tail -c +10 | head -c 66 | seed identifier aperture
head -c 66 /dev/zero | seed identifier zeros

# backend_uri: every backend of crates/lightning/src/lib.rs, with secrets of their real shapes
# (LNbits keys and phoenixd passwords are 32 and 64 hex digits, a rune is base64url), and a few
# refused ones.
HEX32=$(printf '5e%.0s' $(seq 16))
HEX64=$(printf 'c0%.0s' $(seq 32))
PUBKEY=$(printf 'b7%.0s' $(seq 32))
MACAROON=0201036c6e6402f801030a10$(printf 'a5%.0s' $(seq 60))
RUNE='tU-RLjMiDpY2U0o3W1oFowar36RFGpWloPbW9-RuZdo9MyZpZD0wMjRiOWExZmE4ZTAwNmYxZTM5MzdmNjVmNjZjNDA4ZTZkYThlMWNhNzI4ZWE0MzIyMmE3MzgxZGYxY2M0NDk2MDUmbWV0aG9kPWxpc3RwZWVycw=='
printf 'dev' | seed backend_uri dev
printf 'dev?account=alice' | seed backend_uri dev_account
printf 'dev+http://127.0.0.1:8402' | seed backend_uri dev_http
printf 'dev+https://[::1]:8402/dev/?account=bob.2' | seed backend_uri dev_https
printf 'lnbits+http://127.0.0.1:5000?key=%s' "$HEX32" | seed backend_uri lnbits
printf 'lnbits+https://legend.lnbits.example/lnbits/?key=%s&network=signet' "$HEX32" \
    | seed backend_uri lnbits_path
printf 'lnd+https://127.0.0.1:8080?macaroon=%s&cert=/home/u/.lnd/tls.cert&network=regtest' \
    "$MACAROON" | seed backend_uri lnd_hex
printf 'lnd+https://node.example:8080?macaroon=/home/u/.lnd/data/chain/bitcoin/mainnet/admin.macaroon' \
    | seed backend_uri lnd_file
printf 'cln+https://127.0.0.1:3010?rune=%s' "$RUNE" | seed backend_uri cln
printf 'phoenixd+http://127.0.0.1:9740?password=%s&network=mainnet' "$HEX64" \
    | seed backend_uri phoenixd
printf 'nostr+walletconnect://%s?relay=wss%%3A%%2F%%2Frelay.example&relay=ws://127.0.0.1:7000&secret=%s&lud16=alice%%40example.com' \
    "$PUBKEY" "$HEX64" | seed backend_uri nwc
printf '  lnbits+http://user:pw@h:5000?key=%s  ' "$HEX32" | seed backend_uri user_info
printf 'lnbits+http://h:5000?key=%s&kye=1' "$HEX32" | seed backend_uri unknown_parameter
printf 'phoenixd+http://h:9740?password=%s&password=%s' "$HEX64" "$HEX64" | seed backend_uri twice
printf 'cln+ftp://h:3010?rune=%s' "$RUNE" | seed backend_uri bad_scheme
printf 'lnd+https://h:8080?macaroon=%s&network=moon' "$MACAROON" | seed backend_uri bad_network

# invoice: real invoices, issued by `plannt wallet --wallet dev invoice …` (regtest, a payee
# field, a payment secret and features) and by LNbits 1.6.2's FakeWallet (mainnet, a payment
# secret and no feature field; from crates/lightning/tests/lightning/lnbits.rs), then mutated. To make
# more: cargo build -p plannt, then
#   PLANNT_DATA_DIR=$(mktemp -d) target/debug/plannt wallet --wallet dev invoice 21 --json
DEV_21='lnbcrt210n1p4s0gz6dq2wpkxzmnwwspp5uheer045dxl5gtsp7m3dsp7ss9e7xvjysffawscenzv0826wlgxssp5g27z7rs9qqp0hw8nsm29edzrgqnpcl4gc0dmvy9qhr8mgq2je63q9qrsgqcqzysxqrrssnp4qt0yta0hlvcls3jqp4a9vm3n9z5psmvmnphmts3fgdt0n6cyngn5cpszy8k2y3fkmcm0vw28cjavd7dnk567e9nspr8pku3dhcjjz4z7p5gzcdjccrk5ys9dapqw3j0wxczrt6a2nszr57we74c527fyy0sqqmgr2uq'
DEV_MEMO='lnbcrt10n1p4s0gz6dqlvdhkven9v5sw9xy4yq38zat0w3jkggspp5sfgf422un2e73hyasy4gj9q355pkvzc7xvvm0efttf8g7rqmvt8ssp5nvgvuqu8kvfmhm7s9jtvgxldr9f84mv55294w2y6eg6g2jq9kmms9qrsgqcqzysxqzpunp4qt0yta0hlvcls3jqp4a9vm3n9z5psmvmnphmts3fgdt0n6cyngn5cajys4zws6wsu7mrvt5ec3qumecee09pzdmqdpycuk0e6krsrt2eym7kdmuh7cfhqcjwm03fgj92q6gegsl0au8nwq66twc7xc7cjahcp4272y9'
DEV_LONG='lnbcrt21m1p4s0gz6dqqpp5hxhe48f8zwqwux0wz8ynk0r7fhj86j3m28m8ru7szufl3ljvpufqsp5fvakg9e4d8k0k4yaqduzcxmn7368ra8d3gs99y7knuyx7hwsudxq9qrsgqcqzysxq8rllllllnp4qt0yta0hlvcls3jqp4a9vm3n9z5psmvmnphmts3fgdt0n6cyngn5cvsp423dmccwjfs9gzcjh5lh2w03l48ud6wxq63kvj79v7p4c5xzjnxqmp2pcemy5z5yuafdtvcll8m65k5as4r8r8xupqx748d4xdesprednk2'
FAKEWALLET='lnbc210n1p4s088adqz0qxqzjcsp5v06ctkm27t6gmrjqdjur404ales2cu5ljf8at3tws3k90nt6ccqspp54p5582sd67f7tffkt8yrearng7q6aajsj6sx6d6u9p0ruxy4830sk5af564tyvmrpk8cv3yt4eu7g48gsh7x2ef9n5keqfd83kpyfhmprw9hn8pft5shef2y6q2uh22naqdt44jera2r69uhmnjj6kyvgecpr7kte4'
printf '%s' "$DEV_21" | seed invoice dev_21_sats
printf '%s' "$DEV_MEMO" | seed invoice dev_memo_60s   # memo 'coffee ☕ "quoted"', expiry 60 s
printf '%s' "$DEV_LONG" | seed invoice dev_empty_memo_max_expiry   # 2 100 000 sats, expiry 2^32-1 s
printf '%s' "$FAKEWALLET" | seed invoice lnbits_fakewallet
printf '%s' "$DEV_21" | tr 'a-z' 'A-Z' | seed invoice uppercase
printf 'lightning:%s' "$DEV_21" | seed invoice uri_prefix
printf 'LIGHTNING:%s' "$FAKEWALLET" | tr 'a-z' 'A-Z' | seed invoice uri_prefix_uppercase
printf ' \t%s\n' "$FAKEWALLET" | seed invoice whitespace
printf '%sp' "${DEV_21%q}" | seed invoice bad_checksum
printf '%s' "${DEV_21%?}" | seed invoice truncated
printf '%s' "${FAKEWALLET/#lnbc/lntb}" | seed invoice other_network
printf '%s' "${DEV_MEMO/#lnbcrt10n/lnbcrt1000p}" | seed invoice other_amount_unit

# MPP: a charge challenge, Aperture's credential and receipt vectors, and a credential that
# the harness re-signs (route demo, 21 sats, preimage 32 bytes 0x2a, which is `*`, expires 2027).
MPP_REQUEST=$(printf '{"amount":"21","currency":"sat","externalId":"demo","methodDetails":{"invoice":"lnbcrt210n1p","network":"regtest","paymentHash":"%s"}}' \
    "$(printf '*%.0s' $(seq 32) | sha256sum | cut -c1-64)" | base64 -w0 | tr '+/' '-_' | tr -d '=')
printf 'Payment id="x7Tg2pLqR9mKvNwY3hBcZa", realm="api.example.com", method="lightning", intent="charge", request="%s", expires="2027-01-15T08:10:00Z"' \
    "$MPP_REQUEST" | seed mpp_challenge charge
printf 'Payment id="a", realm="r", method="lightning", intent="charge", request="cQ", Payment id="b", realm="r\\"x", method="lightning", intent="session", request="cQ"\nBasic realm="x", L402 macaroon="%s", invoice="%s"' \
    "$TOKEN" "$INVOICE" | seed mpp_challenge two_challenges_and_l402
MPP_CREDENTIAL=$(printf '{"challenge":{"id":"x","realm":"api.example.com","method":"lightning","intent":"charge","request":"%s","expires":"2027-01-15T08:10:00Z"},"payload":{"preimage":"%s"}}' \
    "$MPP_REQUEST" "$PREIMAGE" | base64 -w0 | tr '+/' '-_' | tr -d '=')
printf 'Payment %s' "$MPP_CREDENTIAL" | seed mpp_credential charge
printf 'Bearer x\nPayment %s\npayment %s' "$MPP_CREDENTIAL" "$MPP_CREDENTIAL" | seed mpp_credential several_headers
printf 'Payment eyJjaGFsbGVuZ2UiOnsiaWQiOiJrTTl4UHFXdlQybkpySHNZNGFEZkViIiwicmVhbG0iOiJhcGkuZXhhbXBsZS5jb20iLCJtZXRob2QiOiJsaWdodG5pbmciLCJpbnRlbnQiOiJjaGFyZ2UiLCJyZXF1ZXN0IjoiZXlKaGJXOTFiblFpT2lJeE1EQWlmUSIsImV4cGlyZXMiOiIyMDI2LTAzLTE1VDEyOjA1OjAwWiJ9LCJwYXlsb2FkIjp7InByZWltYWdlIjoiYTNmMWUyZDRiNWM2YTdlOCJ9fQ' \
    | seed mpp_credential aperture_vector
printf 'eyJzdGF0dXMiOiJzdWNjZXNzIiwibWV0aG9kIjoibGlnaHRuaW5nIiwidGltZXN0YW1wIjoiMjAyNi0wMy0xMFQyMTowMDowMFoiLCJyZWZlcmVuY2UiOiJiYzIzMDg0N2FiY2RlZjEyMzQ1Njc4OTAiLCJjaGFsbGVuZ2VJZCI6ImtNOXhQcVd2VDJuSnJIc1k0YURmRWIifQ' \
    | seed mpp_receipt aperture_vector
printf '{"status":"success","method":"lightning","timestamp":"2026-03-10T21:00:00Z","reference":"%s"}' "$PREIMAGE" \
    | seed mpp_receipt json

# x402: PAYMENT-REQUIRED, PAYMENT-SIGNATURE and PAYMENT-RESPONSE, as base64 and as bare JSON.
X402_ACCEPTED='{"scheme":"exact","network":"bip122:0f9188f13cb7b2c71f2a335e3a4fc328","amount":"21000","asset":"BTC","payTo":"anonymous","maxTimeoutSeconds":600,"extra":{"paymentMethod":"lightning","invoice":"lnbcrt210n1p","paymentHash":"00","plannt":{"route":"demo","validUntil":1800000600,"tag":"AAAA"}}}'
printf '{"x402Version":2,"resource":{"url":"https://a.example/v1/demo"},"accepts":[%s]}' "$X402_ACCEPTED" | seed x402 required_json
printf '{"x402Version":2,"resource":{"url":"https://a.example/v1/demo"},"accepts":[%s]}' "$X402_ACCEPTED" | base64 -w0 | seed x402 required
printf '{"x402Version":2,"scheme":"exact","network":"bip122:0f9188f13cb7b2c71f2a335e3a4fc328","payload":{"invoice":"lnbcrt210n1p"},"accepted":%s}' "$X402_ACCEPTED" | seed x402 signature_json
printf '{"success":true,"transaction":"%s","network":"bip122:0f9188f13cb7b2c71f2a335e3a4fc328","payer":"anonymous","extra":{"invoice":"lnbcrt210n1p","settledAt":1800000000}}' "$PREIMAGE" | seed x402 response_json

# JSON for the canonicalizer: Aperture's hardest canonicalization inputs.
printf '{"\\ue000":1,"\\ud800\\udc00":2,"\\uffff":3,"\\ud7ff":4}' | seed jcs surrogate_order
printf '{"a":1e-6,"b":1e-7,"c":1e21,"d":5e-324,"e":1.7976931348623157e308,"f":-0.0,"g":36028797018963968}' | seed jcs numbers
printf '{"s":"\\b\\f\\n\\r\\t\\u0000\\u001f\\u007f\\u2028 Q&A <b>","n":[true,false,null,[],{}]}' | seed jcs strings

echo "seeds written under $(pwd)/corpus"

# Request paths: plain, every spelling the gateway rewrites, and every one it refuses.
for p in /v1/search /v1/searc%68 /v1/%73earch //v1///search// /a%2a /caf%c3%a9 /v1/search.json \
    /docs/../api /docs/%2e%2E/api /docs/..%2fapi '/docs\..' /v1/search\;x /docs/..\;/api \
    /v1/searc%2568 /v1/a%00 /a%zz /%c0%ae%c0%ae/api; do
    printf '%s' "$p" | seed path "$(printf '%s' "$p" | sha256sum | cut -c1-12)"
done

# Bodies of a metered route: an OpenAI chat completion request, plain, streamed, and with parts.
printf '{"model":"gpt-4o-mini","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello world"}],"max_tokens":32}' | seed openai_price chat
printf '{"model":"o","messages":[{"role":"user","name":"ann","content":"hi"}],"max_completion_tokens":8,"n":2,"stream":true,"stream_options":{"include_usage":true}}' | seed openai_price stream
printf '{"model":"gpt-4o-mini","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}' | seed openai_price parts

# MPP sessions: a session challenge's request (JSON and base64url) and a need-top-up event.
SESSION_REQUEST='{"amount":"1","currency":"sat","depositAmount":"2000","depositInvoice":"lnbcrt20u1p","idleTimeout":"300","paymentHash":"0000000000000000000000000000000000000000000000000000000000000000","unitType":"token"}'
printf '%s' "$SESSION_REQUEST" | seed mpp_session request_json
printf '%s' "$SESSION_REQUEST" | base64 -w0 | tr '+/' '-_' | tr -d '=' | seed mpp_session request
printf '{"sessionId":"00","balanceSpent":2000,"balanceRequired":8}' | seed mpp_session need_topup
printf ': plannt-session-debit {"sessionId":"00","debitSats":17,"balanceSats":1983}\n' | seed mpp_session debit_comment
printf '{"method":"lightning","reference":"00","status":"success","timestamp":"2026-01-01T00:00:00Z","debitSats":17,"balanceSats":1983}' | seed mpp_session receipt_debit
printf '{"method":"lightning","reference":"00","status":"success","timestamp":"2026-01-01T00:00:00Z","heldSats":33,"balanceSats":1967}' | seed mpp_session receipt_held
