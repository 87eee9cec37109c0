"""The local stack: the Tansu broker, Milvus processes and worker supervision."""
