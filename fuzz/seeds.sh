#!/usr/bin/env bash
# Writes a small seed corpus for every fuzz target into fuzz/corpus/<target>/ (gitignored), from
# the real Aperture token of DESIGN.md and hand-written headers and caveats. Safe to run again:
# it only adds files. Needs only coreutils.
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

echo "seeds written under $(pwd)/corpus"
