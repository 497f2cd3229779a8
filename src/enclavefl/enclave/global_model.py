"""The last released global model: resident while it is needed, read back from the sealed checkpoint otherwise.

    model = GlobalModel(model_bytes, weights, sha256_hex)    # resident
    model.stored = store.open_model(path)                     # the same model, in the checkpoint sealed for it
    model.evict()                                             # a FedAvg round opens: the accumulator takes its place
    payload = model.payload()                                 # what a download streams: the sealed file once stored

Why: a round of plain FedAvg needs the global model only for its schema and header (the accumulator is laid out
in the next model's bytes), so keeping it resident for downloads made the node hold 3x the model (global model,
accumulator, staging slot). Once the model is in a sealed checkpoint, downloads read it from there in
authenticated chunks (enclave/stored_model.py) and the round holds accumulator + staging slot: 2x.
"""

from __future__ import annotations

from enclavefl.core.codec import HEADER_LENGTH_SIZE, ModelBytes, decode_weights, header_length, parse_header
from enclavefl.core.model_source import ModelSource
from enclavefl.core.weights import ModelSchema, ModelWeights
from enclavefl.enclave.stored_model import StoredModel
from enclavefl.errors import CheckpointError, WrongRound

# A model this small stays resident and is served from memory: it fits the round's 64 MiB allowance many times over,
# and a status answer that inlines it (transport: INLINE_MODEL_BYTES) must not read and decrypt a file per owner.
RESIDENT_BYTES = 1 << 20


class GlobalModel:
    """One model: its canonical safetensors bytes and read-only views of them, and/or its sealed copy on disk."""

    def __init__(self, model_bytes: ModelBytes, weights: ModelWeights, sha256_hex: str) -> None:
        self.schema: ModelSchema = weights.schema
        self.sha256_hex = sha256_hex
        self.header = bytes(memoryview(model_bytes)[: parse_header(model_bytes).data_start])  # identical every round
        self.nbytes = len(model_bytes)
        self._bytes: ModelBytes | None = model_bytes
        self._weights: ModelWeights | None = weights
        self.stored: StoredModel | None = None  # the same bytes inside a sealed checkpoint, once it is written
        # True when these bytes are not the released model they stand for (a resumed node's pending aggregate)
        self.withheld = False

    @classmethod
    def of_stored(cls, stored: StoredModel, *, schema: ModelSchema, sha256_hex: str) -> GlobalModel:
        """A model known only by its sealed copy (a resumed node's last released model, its next round pending);
        read once to check it has the digest `sha256_hex` (CheckpointError otherwise)."""
        if decode_weights(memoryview(stored.read()).toreadonly()).sha256().hex() != sha256_hex:
            raise CheckpointError(f"the checkpoint of round {stored.rounds} does not hold the model released then")
        first = bytes(next(stored.views(HEADER_LENGTH_SIZE), b""))
        data_start = HEADER_LENGTH_SIZE + header_length(first) if len(first) == HEADER_LENGTH_SIZE else 0
        head = bytearray()
        for view in stored.views(1 << 20):
            head += view[: data_start - len(head)]
            if len(head) >= data_start:
                break
        model = cls.__new__(cls)
        model.schema, model.sha256_hex, model.header, model.nbytes = schema, sha256_hex, bytes(head), stored.nbytes
        model._bytes, model._weights, model.stored, model.withheld = None, None, stored, False
        return model

    def with_stored(self, stored: StoredModel, *, signing: bool) -> GlobalModel:
        """This model, read from `stored` from now on. `signing`: a node resumed while its next round waits for
        signatures holds that round's aggregate, not this model: the model is then known only from `stored`."""
        if signing:
            return GlobalModel.of_stored(stored, schema=self.schema, sha256_hex=self.sha256_hex)
        if stored.nbytes == self.nbytes:
            self.stored = stored
        return self

    @property
    def resident(self) -> bool:
        return self._bytes is not None

    def payload(self) -> ModelSource:
        """What a download sends: the sealed checkpoint when there is one, so no copy stays resident for it."""
        if self.withheld:
            raise WrongRound(
                "the last released model is not on this node since its restart (its round's checkpoint is gone);"
                " it is downloadable again once the sealed round is released"
            )
        if self.stored is not None and not (self._bytes is not None and self.nbytes <= RESIDENT_BYTES):
            return self.stored
        assert self._bytes is not None  # evict() keeps the bytes when nothing is stored
        return self._bytes

    def model_bytes(self) -> ModelBytes:
        """The bytes in memory (read back from disk once evicted: a restart's resume, a to_checkpoint call)."""
        if self._bytes is not None:
            return self._bytes
        assert self.stored is not None
        return self.stored.read()

    def weights(self) -> ModelWeights:
        if self._weights is not None:
            return self._weights
        return decode_weights(memoryview(self.model_bytes()).toreadonly())

    def evict(self) -> bool:
        """Drop the resident copy if the sealed one can replace it (and the model is not tiny); whether it did."""
        if self.stored is None or self.nbytes <= RESIDENT_BYTES:
            return False
        self._bytes = self._weights = None
        return True
