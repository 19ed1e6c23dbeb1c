#!/usr/bin/env bash
# Bad inputs against a running app: prints each attempt's answer (status, code, time).
# Usage: scripts/probe_hardening.sh BINARY PORT TAXONOMY KEY, with DATABASE_URL and
# REVIEWLOOP_DATA_DIR set to a database whose TAXONOMY has a serving version and KEY a
# valid API key (docs/security.md has the closing table it gave, before and after).
set -u
BIN=$1; PORT=$2; TAXONOMY=$3; KEY=$4; URL=http://127.0.0.1:$PORT
OUT=$(mktemp -d)
$BIN user add probe-user --role engineer --password probe-password-1 >/dev/null 2>&1 || true
$BIN serve --bind 127.0.0.1:$PORT --no-worker --api-taxonomy "$TAXONOMY" > $OUT/serve-$PORT.log 2>&1 &
SERVER=$!
sleep 3
t() { rm -f $OUT/body; curl -s -o $OUT/body -w "%{http_code} %{time_total}s" --max-time "${MAX:-10}" "$@"; echo " $(head -c 160 $OUT/body | tr '\n' ' ')"; }
echo "== next=/\\evil.example on the language switch"; curl -s -o /dev/null -w "%{http_code} Location: %{redirect_url}\n" "$URL/lang/en?next=/%5Cevil.example"
echo "== Bearer in lower case"; t -X POST "$URL/api/v1/analyze" -H "authorization: bearer $KEY" -H 'content-type: application/json' -d '{"text":"배송이 빨라요"}'
echo "== 12 bad keys from one address"; for i in $(seq 12); do curl -s -o /dev/null -w "%{http_code} " -X POST "$URL/api/v1/analyze" -H "Authorization: Bearer rl_bad$i" -H 'content-type: application/json' -d '{"text":"x"}'; done; echo
echo "== 7 wrong passwords for probe-user, then the right one"
for i in $(seq 8); do
  jar=$OUT/jar$PORT; rm -f $jar
  page=$(curl -s -c $jar "$URL/login"); csrf=$(echo "$page" | grep -o 'name="csrf" value="[^"]*"' | head -1 | sed 's/.*value="//;s/"//')
  pw=wrong-password; [ $i = 8 ] && pw=probe-password-1
  curl -s -o /dev/null -b $jar -w "%{http_code} " -X POST "$URL/login" --data-urlencode "username=probe-user" --data-urlencode "password=$pw" --data-urlencode "csrf=$csrf"
done; echo
python3 - > $OUT/big.json <<'PY'
import json
text = ("배송이 빨라요 색감이 예뻐요 사이즈가 딱 맞아요 " * 300)[:4990]
print(json.dumps({"reviews": [{"text": text} for _ in range(64)], "highlights": True}))
PY
echo "== 64 reviews of 4,990 characters with highlights (10 s timeout)"; t -X POST "$URL/api/v1/analyze" -H "Authorization: Bearer $KEY" -H 'content-type: application/json' --data-binary @$OUT/big.json
echo "== a one-sentence request right after it (10 s timeout)"; t -X POST "$URL/api/v1/analyze" -H "Authorization: Bearer $KEY" -H 'content-type: application/json' -d '{"text":"배송이 빨라요"}'
kill $SERVER; wait $SERVER 2>/dev/null
