package io.sparklora.checkpoint;

import io.sparklora.adapters.AdapterConfig;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.PeftAdapterFormat;
import io.sparklora.api.AdapterDirectory;
import io.sparklora.api.TinyBase;
import io.sparklora.model.Parameter;
import io.sparklora.model.TransformerLM;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Pickle stays refused wherever a directory is given: a model directory (as the pipeline's driver checks it on any file
 * system, and as a model loads) or an adapter directory whose weights are only pickles, and a sharded index listing
 * pickle shards, fail with an error naming the file and saying pickles are never loaded; beside safetensors a pickle is
 * ignored.
 */
class PickleRefusedTest {
    private static final Configuration CONF = new Configuration();
    private static final byte[] PICKLE = {(byte) 0x80, 2, '}', 'q', 0, '.'};   // protocol 2: an empty dict

    @TempDir
    Path tmp;

    private static void assertRefusal(RuntimeException e, String file) {
        assertTrue(e.getMessage().contains(file), "names " + file + ": " + e.getMessage());
        assertTrue(e.getMessage().contains("never unpickles"), e.getMessage());
        assertTrue(e.getMessage().contains("safetensors") || e.getMessage().contains("safe_serialization"), e.getMessage());
    }

    /** A model directory whose weights are the pickle {@code name} only (config and tokenizer as a real one has). */
    private Path pickleOnlyModel(String name) throws Exception {
        Path dir = TinyBase.write(tmp.resolve("model-" + name), 3);
        Files.delete(dir.resolve(CheckpointFiles.SINGLE_FILE));
        Files.write(dir.resolve(name), PICKLE);
        return dir;
    }

    @ParameterizedTest
    @ValueSource(strings = {"pytorch_model.bin", "model.pt", "weights.pth", "last.ckpt", "state.pkl", "model.pickle"})
    void aModelDirectoryWithOnlyAPickleIsRefused(String name) throws Exception {
        Path dir = pickleOnlyModel(name);
        assertRefusal(assertThrows(CheckpointException.class, () -> BaseModelRef.of(CONF, dir.toString())), name);
        assertRefusal(assertThrows(CheckpointException.class, () -> HfModelDirectory.load(dir)), name);
    }

    @Test
    void besideSafetensorsAPickleIsNeverTheOneRead() throws Exception {
        Path dir = TinyBase.write(tmp.resolve("both"), 3);
        TransformerLM expected = HfModelDirectory.load(dir);
        String hash = BaseModelRef.of(CONF, dir.toString()).contentHash();
        Files.write(dir.resolve("pytorch_model.bin"), PICKLE);
        Files.write(dir.resolve("training_args.bin"), PICKLE);
        assertEquals(hash, BaseModelRef.of(CONF, dir.toString()).contentHash(), "pickles are not even hashed");
        TransformerLM loaded = HfModelDirectory.load(dir);
        assertEquals(expected.stateDict(), loaded.stateDict());
    }

    @Test
    void aShardedIndexThatListsPickleShardsIsRefused() throws Exception {
        Path dir = TinyBase.write(tmp.resolve("sharded"), 3);
        Files.delete(dir.resolve(CheckpointFiles.SINGLE_FILE));
        Files.write(dir.resolve("pytorch_model-00001-of-00002.bin"), PICKLE);
        Files.write(dir.resolve("pytorch_model-00002-of-00002.bin"), PICKLE);
        Files.writeString(dir.resolve(CheckpointFiles.INDEX_FILE), "{\"metadata\": {}, \"weight_map\": {"
                + "\"transformer.wte.weight\": \"pytorch_model-00001-of-00002.bin\", \"lm_head.weight\": \"pytorch_model-00002-of-00002.bin\"}}");
        assertRefusal(assertThrows(CheckpointException.class, () -> BaseModelRef.of(CONF, dir.toString())), "pytorch_model-00001-of-00002.bin");
        assertRefusal(assertThrows(CheckpointException.class, () -> HfModelDirectory.load(dir)), "pytorch_model-00001-of-00002.bin");

        // transformers' own name for a pickle index, with no safetensors index: its shards are what is found
        Files.move(dir.resolve(CheckpointFiles.INDEX_FILE), dir.resolve("pytorch_model.bin.index.json"));
        assertRefusal(assertThrows(CheckpointException.class, () -> BaseModelRef.of(CONF, dir.toString())), "pytorch_model-00001-of-00002.bin");
        assertRefusal(assertThrows(CheckpointException.class, () -> HfModelDirectory.load(dir)), "pytorch_model-00001-of-00002.bin");
    }

    /** A saved LoRA adapter directory of {@link TinyBase}'s model, and the tensors it holds. */
    private Path savedAdapter(TransformerLM model, String name) {
        AttachedAdapter a = AttachedAdapter.attach(model, "default", AdapterConfig.lora(2, 4, List.of("c_attn")), 5);
        for (Parameter p : a.stateTensors()) p.value().addi(0.25);   // B starts at zero; make every tensor tell
        Path dir = tmp.resolve(name);
        PeftAdapterFormat.save(a, dir, "base");
        a.detach();
        return dir;
    }

    @ParameterizedTest
    @ValueSource(strings = {"adapter_model.bin", "adapter_model.pt"})
    void anAdapterDirectoryWithOnlyAPickleIsRefused(String name) throws Exception {
        TransformerLM model = HfModelDirectory.load(TinyBase.write(tmp.resolve("base"), 3));
        Path dir = savedAdapter(model, "adapter");
        Files.delete(dir.resolve(PeftAdapterFormat.WEIGHTS_FILE));
        Files.write(dir.resolve(name), PICKLE);
        assertRefusal(assertThrows(CheckpointException.class, () -> PeftAdapterFormat.load(model, dir, "default")), name);
        assertRefusal(assertThrows(CheckpointException.class, () -> AdapterDirectory.attach(CONF, dir.toString(), model)), name);
        assertRefusal(assertThrows(CheckpointException.class, () -> AdapterDirectory.info(CONF, dir.toString())), name);
        // nothing stayed attached: the name is free
        AttachedAdapter.attach(model, "default", AdapterConfig.lora(2, 4, List.of("c_attn")), 5).detach();
    }

    @Test
    void besideAdapterSafetensorsAPickleIsIgnored() throws Exception {
        TransformerLM model = HfModelDirectory.load(TinyBase.write(tmp.resolve("base"), 3));
        Path dir = savedAdapter(model, "adapter");
        AttachedAdapter clean = PeftAdapterFormat.load(model, dir, "default");
        List<org.nd4j.linalg.api.ndarray.INDArray> expected = clean.stateTensors().stream().map(p -> p.value().dup()).toList();
        clean.detach();
        Files.write(dir.resolve("adapter_model.bin"), PICKLE);
        AttachedAdapter loaded = PeftAdapterFormat.load(model, dir, "default");
        assertEquals(expected, loaded.stateTensors().stream().map(Parameter::value).toList());
        loaded.detach();
        AttachedAdapter viaHadoop = AdapterDirectory.attach(CONF, dir.toString(), model);
        assertEquals(expected, viaHadoop.stateTensors().stream().map(Parameter::value).toList());
        assertFalse(expected.get(0).sumNumber().doubleValue() == 0, "the adapter is not all zeros");
    }
}
