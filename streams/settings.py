"""The one settings object. Every field reads the environment variable ``FUSIONREC_<FIELD>``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from fusionrec.agents.profile import DEFAULT_EVENT_WEIGHTS
from fusionrec.schemas import InteractionType


class Settings(BaseSettings):
    """Frozen: build one at the entry point and pass it (or what it yields) down."""

    model_config = SettingsConfigDict(env_prefix="FUSIONREC_", frozen=True, extra="ignore")

    bootstrap_servers: str | None = Field(
        default=None,
        description="FUSIONREC_BOOTSTRAP_SERVERS: Kafka bootstrap servers, `host:port[,host:port]`. "
        "Unset: `fusionrec up` / `demo` start the embedded Tansu broker on loopback.",
    )
    broker_flavor: Literal["kafka", "tansu"] = Field(
        default="kafka",
        description="FUSIONREC_BROKER_FLAVOR: `tansu` turns on the work-arounds for the local Tansu broker "
        "(streams/embedded/tansu.py); set by the embedded stack, never needed with a real Kafka.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", description="FUSIONREC_KAFKA_SECURITY_PROTOCOL: how clients and workers talk to Kafka."
    )
    kafka_sasl_mechanism: str = Field(
        default="PLAIN", description="FUSIONREC_KAFKA_SASL_MECHANISM: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."
    )
    kafka_sasl_username: str | None = Field(default=None, description="FUSIONREC_KAFKA_SASL_USERNAME.")
    kafka_sasl_password: SecretStr | None = Field(
        default=None, description="FUSIONREC_KAFKA_SASL_PASSWORD (never logged or printed)."
    )
    kafka_ssl_ca_location: Path | None = Field(
        default=None, description="FUSIONREC_KAFKA_SSL_CA_LOCATION: CA bundle to verify the brokers with."
    )
    milvus_uri: str | None = Field(
        default=None,
        description="FUSIONREC_MILVUS_URI: `http://host:19530` (Milvus or a served milvus-lite), a `*.db` path "
        "(milvus-lite in-process) or `memory://`. Unset: the embedded stack serves milvus-lite from data_dir.",
    )
    milvus_token: SecretStr = Field(default=SecretStr(""), description="FUSIONREC_MILVUS_TOKEN: `user:password` or API key.")
    collection: str = Field(default="fusionrec_items", description="FUSIONREC_COLLECTION: Milvus collection of item vectors.")
    data_dir: Path = Field(
        default=Path(".fusionrec"), description="FUSIONREC_DATA_DIR: embedded Milvus data, worker state, logs."
    )

    items_topic: str = Field(default="fusionrec.items", description="FUSIONREC_ITEMS_TOPIC (key: item id).")
    interactions_topic: str = Field(
        default="fusionrec.interactions", description="FUSIONREC_INTERACTIONS_TOPIC (key: user id)."
    )
    recommendations_topic: str = Field(
        default="fusionrec.recommendations", description="FUSIONREC_RECOMMENDATIONS_TOPIC (key: user id)."
    )
    dead_letters_topic: str = Field(default="fusionrec.dead-letters", description="FUSIONREC_DEAD_LETTERS_TOPIC.")
    retry_topic: str = Field(
        default="fusionrec.interactions-retry",
        description="FUSIONREC_RETRY_TOPIC: interactions waiting for their item (key: user id).",
    )
    vectors_topic: str = Field(
        default="fusionrec.item-vectors",
        description="FUSIONREC_VECTORS_TOPIC: every vector the encoder stores (key: collection/item id), compacted; profile "
        "workers keep their in-process copy of the index from it.",
    )
    index_replica: bool = Field(
        default=True,
        description="FUSIONREC_INDEX_REPLICA: profile workers search an in-process copy of the item vectors, fed "
        "by the vectors topic (fast; memory grows with the catalogue: 10,000 x 384-d items take 15 MB). Off: every "
        "search goes to Milvus.",
    )
    partitions: int = Field(default=4, ge=1, description="FUSIONREC_PARTITIONS: partitions per topic = max parallelism.")
    replication_factor: int = Field(default=1, ge=1, description="FUSIONREC_REPLICATION_FACTOR for created topics.")
    profile_generation: int = Field(
        default=1, ge=1,
        description="FUSIONREC_PROFILE_GENERATION: which profile table and consumer group the profile workers "
        "use; `fusionrec replay profiles` prepares the next one, rebuilt from the interactions topic.",
    )
    table_store: str = Field(
        default="rocksdb://",
        description="FUSIONREC_TABLE_STORE: Faust table store: `rocksdb://` (on disk under data_dir, restarts "
        "read only the changelog tail) or `memory://` (rebuilt from the changelog on every start).",
    )
    table_memory_mb: int = Field(
        default=64, ge=8,
        description="FUSIONREC_TABLE_MEMORY_MB: RocksDB memory (write buffers and block cache) per profile table "
        "partition a worker holds; Faust's defaults let each grow past 2 GB.",
    )

    modalities: list[Literal["text", "image", "audio", "video"]] = Field(
        default_factory=lambda: ["text", "image", "audio", "video"],
        description="FUSIONREC_MODALITIES: JSON list of the modalities the encoder worker encodes; media of "
        "others is still checked but not encoded. Ready-made vectors (FUSIONREC_VECTOR_DIMS) are always fused.",
    )
    text_model: str = Field(
        default="all-MiniLM-L6-v2",
        description="FUSIONREC_TEXT_MODEL: sentence-transformers directory, a name under model_dir, "
        "`open_clip:<arch>:<checkpoint>` or `hashing`.",
    )
    image_model: str = Field(
        default="efficientnet-lite0",
        description="FUSIONREC_IMAGE_MODEL: `efficientnet-lite0` (weights ship with the package), a torchvision "
        "architecture with weights at <model_dir>/<arch>.pth or `<arch>:<path>`, or `open_clip:<arch>:<checkpoint>`.",
    )
    audio_model: str = Field(
        default="librosa",
        description="FUSIONREC_AUDIO_MODEL: `librosa` (pooled log-mel/MFCC features) or a exported audio "
        "encoder file (16 kHz waveforms in, one vector per clip out).",
    )
    fusion: Literal["early", "late", "learned"] = Field(
        default="early",
        description="FUSIONREC_FUSION: `early` (weighted concatenation), `late` (weighted sum of per-modality "
        "similarities at query time) or `learned` (trained projections, FUSIONREC_FUSION_MODEL).",
    )
    fusion_weights: dict[str, float] = Field(
        default_factory=dict,
        description='FUSIONREC_FUSION_WEIGHTS: JSON modality -> weight for early/late fusion, e.g. {"audio": 0.5}; '
        "unset ones weigh 1.",
    )
    fusion_model: Path | None = Field(
        default=None, description="FUSIONREC_FUSION_MODEL: a learned fusion artefact (.npz from `fusionrec fusion train`)."
    )
    video_frames: int = Field(default=8, ge=1, le=64, description="FUSIONREC_VIDEO_FRAMES sampled per video.")
    max_audio_s: float = Field(default=30.0, gt=0, description="FUSIONREC_MAX_AUDIO_S: seconds of a clip encoded.")
    audio_windows: int = Field(
        default=3, ge=1, description="FUSIONREC_AUDIO_WINDOWS: a clip longer than max_audio_s is heard in this many "
        "windows spread over all of it (max_audio_s in all); 1 takes its start.",
    )
    max_video_s: float = Field(
        default=60.0, gt=0, description="FUSIONREC_MAX_VIDEO_S: a video up to this long is read through from its start; "
        "a longer one is reached by seeking (its frames are spread over all of it either way).",
    )
    model_dir: Path | None = Field(default=None, description="FUSIONREC_MODEL_DIR: local directory holding models.")
    device: str = Field(default="auto", description="FUSIONREC_DEVICE: `auto`, `cpu`, `cuda`, `cuda:1`...")
    torch_threads: int | None = Field(default=None, ge=1, description="FUSIONREC_TORCH_THREADS: CPU threads for models.")
    compile_models: bool = Field(
        default=True, description="FUSIONREC_COMPILE_MODELS: on CUDA, compile the image backbone with torch.compile "
        "(about 10 s per batch size at start; 2.3x the images/s of EfficientNet-Lite0 on an H100). Ignored on the CPU.",
    )
    encode_batch_size: int = Field(default=64, ge=1, description="FUSIONREC_ENCODE_BATCH_SIZE: items per micro-batch.")
    encode_batch_wait_s: float = Field(
        default=0.25, gt=0, description="FUSIONREC_ENCODE_BATCH_WAIT_S: longest wait to fill a micro-batch."
    )

    profile_batch_size: int = Field(
        default=64, ge=1, description="FUSIONREC_PROFILE_BATCH_SIZE: interactions per micro-batch of a profile "
        "worker (one index search answers the whole batch).",
    )
    profile_batch_wait_s: float = Field(
        default=0.02, gt=0, description="FUSIONREC_PROFILE_BATCH_WAIT_S: longest wait to fill a profile micro-batch "
        "(adds at most this to an event's latency when the stream is quiet).",
    )

    views_snapshot_s: float = Field(
        default=60.0, ge=0, description="FUSIONREC_VIEWS_SNAPSHOT_S: how often a profile worker snapshots its "
        "popularity and co-occurrence views (with the offsets they cover) into the data dir, so a restart reads "
        "only the records after it; 0: never, every start reads both topics from the beginning.",
    )

    top_k: int = Field(default=10, ge=1, le=1000, description="FUSIONREC_TOP_K: items per recommendation list.")
    max_candidates: int = Field(default=500, ge=1, description="FUSIONREC_MAX_CANDIDATES: ANN over-fetch cap.")
    profile_half_life_s: float = Field(
        default=14 * 86_400.0, gt=0, description="FUSIONREC_PROFILE_HALF_LIFE_S: age at which an event counts half."
    )
    short_term_alpha: float = Field(
        default=0.35, gt=0, le=1, description="FUSIONREC_SHORT_TERM_ALPHA: how fast the short-term vector follows new events."
    )
    max_interests: int = Field(default=3, ge=1, le=16, description="FUSIONREC_MAX_INTERESTS: interest vectors per user.")
    max_queries: int = Field(
        default=4, ge=1, le=17,
        description="FUSIONREC_MAX_QUERIES: vectors searched per list (short-term + each distinct interest); each "
        "costs one scan on milvus-lite.",
    )
    event_weights: dict[InteractionType, float] = Field(
        default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS),
        description="FUSIONREC_EVENT_WEIGHTS: JSON event type -> weight; negative pushes a profile away "
        '(default {"view": 1, "click": 1, "play": 1, "like": 2, "add_to_cart": 2.5, "purchase": 3, '
        '"rating": 1, "skip": -0.5, "dislike": -2}).',
    )
    rating_midpoint: float = Field(
        default=3.0, description="FUSIONREC_RATING_MIDPOINT: a `rating` event weighs (value - midpoint) times the "
        "rating weight, so ratings below it push a profile away; 0 makes every rating a positive signal.",
    )
    popularity_half_life_s: float = Field(
        default=7 * 86_400.0, gt=0, description="FUSIONREC_POPULARITY_HALF_LIFE_S: age at which an interaction counts "
        "half in item popularity.",
    )
    trending_half_life_s: float = Field(
        default=3_600.0, gt=0, description="FUSIONREC_TRENDING_HALF_LIFE_S: the same for `popular now` (trending).",
    )
    cooccurrence_window: int = Field(
        default=20, ge=2, description="FUSIONREC_COOCCURRENCE_WINDOW: a user's last N items that count as chosen "
        "together.",
    )
    weight_content: float = Field(
        default=1.0, ge=0, description="FUSIONREC_WEIGHT_CONTENT: ranking weight of content similarity."
    )
    weight_cooccurrence: float = Field(
        default=0.6, ge=0, description="FUSIONREC_WEIGHT_COOCCURRENCE: ranking weight of co-occurrence."
    )
    weight_popularity: float = Field(default=0.25, ge=0, description="FUSIONREC_WEIGHT_POPULARITY: ranking weight of popularity.")
    weight_freshness: float = Field(
        default=0.1, ge=0, description="FUSIONREC_WEIGHT_FRESHNESS: ranking weight of item freshness."
    )
    weight_newness: float = Field(
        default=0.0, ge=0, description="FUSIONREC_WEIGHT_NEWNESS: an item first chosen just now counts up to 1 + this "
        "times its popularity (new releases catching on); 0 = no boost.",
    )
    newness_half_life_s: float = Field(
        default=14 * 86_400.0, gt=0,
        description="FUSIONREC_NEWNESS_HALF_LIFE_S: item age (since its first interaction) at which the boost halves.",
    )
    diversity: float = Field(default=0.2, ge=0, le=1, description="FUSIONREC_DIVERSITY: MMR trade-off, 0 = relevance only.")
    new_item_share: float = Field(
        default=0.0, ge=0, le=1,
        description="FUSIONREC_NEW_ITEM_SHARE: share of each list kept for new items that match the user's content "
        "(at least one place when not 0); 0 ranks them like any other item.",
    )
    new_item_interactions: int = Field(
        default=5, ge=1, description="FUSIONREC_NEW_ITEM_INTERACTIONS: an item with fewer interactions than this is new.",
    )
    search_modalities: list[Literal["text", "image"]] = Field(
        default_factory=lambda: ["text", "image"],
        description="FUSIONREC_SEARCH_MODALITIES: JSON list of the query parts a profile worker encodes (words with "
        "FUSIONREC_TEXT_MODEL, pictures with FUSIONREC_IMAGE_MODEL; each model loads at its first query); [] turns "
        "words, pictures and `search` events off.",
    )
    search_personalization: float = Field(
        default=1.0, ge=0, description="FUSIONREC_SEARCH_PERSONALIZATION: how much a user's profile, co-occurrence and "
        "popularity count next to query relevance when a search names a user; 0 = plain search (a request may set its own).",
    )
    search_weight_profile: float = Field(
        default=1.0, ge=0, description="FUSIONREC_SEARCH_WEIGHT_PROFILE: weight of a result's closeness to the user's profile."
    )
    search_weight_cooccurrence: float = Field(
        default=0.5, ge=0, description="FUSIONREC_SEARCH_WEIGHT_COOCCURRENCE: weight of co-occurrence with the user's "
        "recent items.",
    )
    search_weight_popularity: float = Field(
        default=0.5, ge=0, description="FUSIONREC_SEARCH_WEIGHT_POPULARITY: weight of a result's popularity."
    )
    search_pool: int = Field(
        default=200, ge=1, le=10_000,
        description="FUSIONREC_SEARCH_POOL: nearest items to a query that personalisation re-ranks.",
    )
    search_event_weight: float = Field(
        default=1.0, ge=0, description="FUSIONREC_SEARCH_EVENT_WEIGHT: how far a `search` event moves a user's "
        "short-term interest toward the query, as an item event of this weight would.",
    )
    include_categories: list[str] = Field(
        default_factory=list, description="FUSIONREC_INCLUDE_CATEGORIES: JSON list; only these categories are recommended."
    )
    exclude_categories: list[str] = Field(
        default_factory=list, description="FUSIONREC_EXCLUDE_CATEGORIES: JSON list; never recommend these categories."
    )
    emit_only_changed: bool = Field(
        default=True, description="FUSIONREC_EMIT_ONLY_CHANGED: publish a list only when its items changed."
    )
    emit_min_interval_s: float = Field(
        default=1.0, ge=0,
        description="FUSIONREC_EMIT_MIN_INTERVAL_S: at most one list per user per interval; a burst is coalesced "
        "into one trailing list.",
    )
    web_host: str = Field(default="127.0.0.1", description="FUSIONREC_WEB_HOST: the profile worker's HTTP bind address.")
    web_port: int = Field(default=6066, ge=1, le=65535, description="FUSIONREC_WEB_PORT: the profile worker's HTTP port.")
    max_event_bytes: int = Field(default=1_000_000, ge=1024, description="FUSIONREC_MAX_EVENT_BYTES per message.")
    max_future_s: float = Field(
        default=86_400.0, ge=0,
        description="FUSIONREC_MAX_FUTURE_S: an interaction `timestamp` or item `updated_at` further ahead of the "
        "worker's clock than this is dead-lettered (invalid_event): a wrong clock or a unit mix-up.",
    )
    vector_dims: dict[str, int] = Field(
        default_factory=dict,
        description="FUSIONREC_VECTOR_DIMS: ready-made vectors items may carry, as JSON name -> dimension, "
        'e.g. {"clip": 512}. Items with other names or dimensions are dead-lettered (bad_vector).',
    )
    media_root: Path | None = Field(
        default=None, description="FUSIONREC_MEDIA_ROOT: the only directory file:// media may come from."
    )
    media_allow_http: bool = Field(default=True, description="FUSIONREC_MEDIA_ALLOW_HTTP: fetch http(s):// media.")
    media_allow_private_hosts: bool = Field(
        default=False,
        description="FUSIONREC_MEDIA_ALLOW_PRIVATE_HOSTS: let media URLs reach loopback/private addresses.",
    )
    media_timeout_s: float = Field(default=10.0, gt=0, description="FUSIONREC_MEDIA_TIMEOUT_S per media fetch.")
    media_retries: int = Field(
        default=2, ge=0,
        description="FUSIONREC_MEDIA_RETRIES: times a media request is sent again after a failure a moment may cure "
        "(connection refused or dropped; 429, 502, 503, 504), waiting 0.5 s, then twice as long each time.",
    )
    max_image_bytes: int = Field(default=10 * 2**20, ge=1, description="FUSIONREC_MAX_IMAGE_BYTES per image.")
    max_audio_bytes: int = Field(
        default=50 * 2**20, ge=1,
        description="FUSIONREC_MAX_AUDIO_BYTES read per clip: all of it, or where it can be read in parts (a file:// "
        "path, a server that serves byte ranges) what is heard of it, so a longer file is fine.",
    )
    max_video_bytes: int = Field(
        default=200 * 2**20, ge=1,
        description="FUSIONREC_MAX_VIDEO_BYTES read per video: all of it, or where it can be read in parts (a file:// "
        "path, a server that serves byte ranges) what is sampled of it, so a longer film is fine.",
    )
    media_fetch_threads: int = Field(default=8, ge=1, description="FUSIONREC_MEDIA_FETCH_THREADS per encoder worker.")
    pending_retry_s: float = Field(
        default=2.0, gt=0,
        description="FUSIONREC_PENDING_RETRY_S: first wait before an interaction whose item is not indexed "
        "yet is retried (doubling per attempt, at most 60 s).",
    )
    pending_timeout_s: float = Field(
        default=600.0, gt=0,
        description="FUSIONREC_PENDING_TIMEOUT_S: how long such an interaction waits for its item before it is "
        "dead-lettered (unknown_item).",
    )

    local_fetch_wait_ms: int = Field(
        default=20, ge=1, description="FUSIONREC_LOCAL_FETCH_WAIT_MS: fetch wait against Tansu, which sleeps it out "
        "on an empty fetch: a record waits up to this long per hop (an event->list trip has two).",
    )
    log_level: str = Field(default="INFO", description="FUSIONREC_LOG_LEVEL.")

    def app_id(self, role: str) -> str:
        """The Faust app id (= consumer group, prefix of its table topics) of ``role``."""
        if role == "profiles" and self.profile_generation > 1:
            return f"fusionrec-profiles-g{self.profile_generation}"
        return f"fusionrec-{role}"

    @property
    def worker_url(self) -> str:
        return f"http://{self.web_host}:{self.web_port}"

    def require_bootstrap(self) -> str:
        from fusionrec.schemas import ConfigError

        if not self.bootstrap_servers:
            raise ConfigError("FUSIONREC_BOOTSTRAP_SERVERS is not set (or use `fusionrec up` for the embedded stack)")
        return self.bootstrap_servers

    def require_milvus_uri(self) -> str:
        from fusionrec.schemas import ConfigError

        if not self.milvus_uri:
            raise ConfigError("FUSIONREC_MILVUS_URI is not set (or use `fusionrec up` for the embedded stack)")
        return self.milvus_uri

    @property
    def is_tansu(self) -> bool:
        return self.broker_flavor == "tansu"

    def to_env(self) -> dict[str, str]:
        """These settings as ``FUSIONREC_*`` variables, to hand to a child process."""
        env = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"FUSIONREC_{name.upper()}"] = json.dumps(value) if isinstance(value, dict | list) else str(value)
        return env


def reference() -> str:
    """Every setting as a Markdown table (``docs/settings.md`` is this, kept in step by a test)."""
    rows = ["# Settings", "",
            "Every field of `fusionrec.streams.Settings` reads the environment variable `FUSIONREC_<NAME>`",
            "(or a `--env-file`). Generated by `fusionrec settings > docs/settings.md`.", "",
            "| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        variable = f"FUSIONREC_{name.upper()}"
        meaning = (field.description or "").removeprefix(variable).lstrip(":. ").replace("|", "\\|").replace("\n", " ")
        default = field.default if field.default_factory is None else field.default_factory()
        if isinstance(default, SecretStr):
            default = default.get_secret_value()
        shown = "unset" if default is None else json.dumps(default) if isinstance(default, dict | list) else str(default)
        rows.append(f"| `{variable}` | `{shown}` | {meaning} |".replace("``", "(empty)"))
    return "\n".join(rows) + "\n"

