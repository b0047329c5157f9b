"""placeholder"""
def ingest_otlp(context):
    raise NotImplementedError
