"""The Open Inference Protocol (KServe V2) messages, under a private proto package."""
