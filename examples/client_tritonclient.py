"""V2 clients against `make serve`: tritonclient over REST and gRPC.

    .venv/bin/python examples/client_tritonclient.py [--http localhost:8080] [--grpc localhost:8081]
"""

from __future__ import annotations

import argparse

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient

WINE_ROW = {
    "alcohol": 13.2, "malic_acid": 1.78, "ash": 2.14, "alcalinity_of_ash": 11.2, "magnesium": 100.0,
    "total_phenols": 2.65, "flavanoids": 2.76, "nonflavanoid_phenols": 0.26, "proanthocyanins": 1.28,
    "color_intensity": 4.38, "hue": 1.05, "od280/od315_of_diluted_wines": 3.4, "proline": 1050.0,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", default="localhost:8080", help="host:port of the REST server")
    parser.add_argument("--grpc", default="localhost:8081", help="host:port of the gRPC server")
    args = parser.parse_args()

    http = httpclient.InferenceServerClient(args.http)
    inputs = []
    for name, value in WINE_ROW.items():
        tensor = httpclient.InferInput(name, [1], "FP64")
        # MLServer speaks JSON tensors only (no Triton binary extension)
        tensor.set_data_from_numpy(np.array([value]), binary_data=False)
        inputs.append(tensor)
    outputs = [httpclient.InferRequestedOutput("predictions", binary_data=False)]
    result = http.infer("wine-regressor", inputs, outputs=outputs)
    print("wine (REST):", result.as_numpy("predictions"), "version", result.get_response()["model_version"])

    grpc = grpcclient.InferenceServerClient(args.grpc)
    prompt = grpcclient.InferInput("prompt", [2], "BYTES")
    prompt.set_data_from_numpy(np.array([b"hello world", b"good morning"], dtype=object))
    result = grpc.infer("text-translator", [prompt])
    print("text (gRPC):", result.as_numpy("translation_text"), "version", result.get_response().model_version)


if __name__ == "__main__":
    main()
