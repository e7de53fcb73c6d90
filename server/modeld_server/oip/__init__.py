"""The Open Inference Protocol (KServe V2), transport-free: tensors in, tensors out.

`core.OpenInference` maps V2's calls onto ModelService (versions, aliases, Predict's
path, Reload and Rollback); `tensors` holds the protocol's data types and raw encoding.
rpc/oip.py serves it over gRPC, rpc/oip_http.py over HTTP/JSON.
"""
