"""The gateway: decide on each live request from the published verdicts, the request's
own signals and sliding windows (decide.py), in the process or over HTTP."""
