#!/usr/bin/env bash
# Requests against `make serve` (REST on localhost:8080). Usage: examples/curl.sh [base-url]
# Exits non-zero when a request does not answer as shown (--fail-with-body: an HTTP error fails).
set -euo pipefail
base="${1:-http://localhost:8080}"

echo "# metadata of the wine regressor (served by name only from the sqlite registry)"
curl -sS --fail-with-body "$base/v2/models/wine-regressor" ; echo

echo "# one wine row over V2"
curl -sS --fail-with-body "$base/v2/models/wine-regressor/infer" -H 'Content-Type: application/json' -d '{
  "inputs": [
    {"name": "alcohol", "datatype": "FP64", "shape": [1], "data": [13.2]},
    {"name": "malic_acid", "datatype": "FP64", "shape": [1], "data": [1.78]},
    {"name": "ash", "datatype": "FP64", "shape": [1], "data": [2.14]},
    {"name": "alcalinity_of_ash", "datatype": "FP64", "shape": [1], "data": [11.2]},
    {"name": "magnesium", "datatype": "FP64", "shape": [1], "data": [100.0]},
    {"name": "total_phenols", "datatype": "FP64", "shape": [1], "data": [2.65]},
    {"name": "flavanoids", "datatype": "FP64", "shape": [1], "data": [2.76]},
    {"name": "nonflavanoid_phenols", "datatype": "FP64", "shape": [1], "data": [0.26]},
    {"name": "proanthocyanins", "datatype": "FP64", "shape": [1], "data": [1.28]},
    {"name": "color_intensity", "datatype": "FP64", "shape": [1], "data": [4.38]},
    {"name": "hue", "datatype": "FP64", "shape": [1], "data": [1.05]},
    {"name": "od280/od315_of_diluted_wines", "datatype": "FP64", "shape": [1], "data": [3.4]},
    {"name": "proline", "datatype": "FP64", "shape": [1], "data": [1050.0]}
  ]
}' ; echo

echo "# text in, text out"
curl -sS --fail-with-body "$base/v2/models/text-translator/infer" -H 'Content-Type: application/json' -d '{
  "inputs": [{"name": "prompt", "datatype": "BYTES", "shape": [2], "data": ["hello world", "good morning"]}]
}' ; echo

echo "# a wrong input name: 400 naming it"
answer=$(curl -sS -w '\n%{http_code}' "$base/v2/models/text-translator/infer" \
  -H 'Content-Type: application/json' -d '{
  "inputs": [{"name": "promt", "datatype": "BYTES", "shape": [1], "data": ["hello"]}]
}')
status="${answer##*$'\n'}"
echo "${answer%$'\n'*} (HTTP $status)"
[ "$status" = 400 ]

echo "# the MLflow scoring protocol, as with mlflow models serve"
curl -sS --fail-with-body "$base/v2/models/text-translator/invocations" -H 'Content-Type: application/json' \
  -d '{"dataframe_records": [{"prompt": "hello world"}]}' ; echo
