package io.sparklora.data;

import io.sparklora.storage.HadoopFiles;
import io.sparklora.train.TokenBlocks;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.ipc.ArrowFileReader;
import org.apache.arrow.vector.ipc.SeekableReadChannel;
import org.apache.arrow.vector.util.ByteArrayReadableSeekableByteChannel;
import org.apache.hadoop.conf.Configuration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class ArrowShardsTest {
    private static final Configuration CONF = new Configuration();
    private static final int SEQ = 8;

    @TempDir
    Path dir;

    private record Written(byte[] bytes, ShardManifest.Shard shard) {}

    private static Written writeBlocks(String file, List<int[]> blocks, List<boolean[]> masks, int batchRows) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (ArrowShardWriter w = ArrowShardWriter.blocks(out, SEQ, batchRows)) {
            for (int i = 0; i < blocks.size(); i++) w.writeBlock(blocks.get(i), masks.get(i));
            w.finish();
            assertEquals(out.size(), w.bytes());
            return new Written(out.toByteArray(), new ShardManifest.Shard(file, w.rows(), 0, 0, 0, w.sha256()));
        }
    }

    private static ShardManifest manifest(int seqLen, List<ShardManifest.Shard> train, List<ShardManifest.Shard> examples) {
        return new ShardManifest(1, "t", "f", 100, 99, 99, seqLen, 0.1, 0, examples.isEmpty() ? null : "\nLabel:",
                examples.isEmpty() ? List.of() : List.of(new ShardManifest.Label("a", new int[]{5}), new ShardManifest.Label("b", new int[]{6, 7})),
                examples.isEmpty() ? Map.of(ShardManifest.TRAIN, train)
                        : Map.of(ShardManifest.TRAIN, train, ShardManifest.VALIDATION_EXAMPLES, examples));
    }

    private static List<int[]> randomBlocks(Random rnd, int n) {
        List<int[]> b = new ArrayList<>();
        for (int i = 0; i < n; i++) b.add(rnd.ints(SEQ + 1, 0, 100_000).toArray());
        return b;
    }

    private static List<boolean[]> randomMasks(Random rnd, int n) {
        List<boolean[]> m = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            boolean[] x = new boolean[SEQ + 1];
            for (int j = 0; j < x.length; j++) x[j] = rnd.nextBoolean();
            m.add(x);
        }
        return m;
    }

    @Test
    void blocksRoundTripOverSeveralBatchesAndBytesAreDeterministic() throws IOException {
        Random rnd = new Random(3);
        List<int[]> blocks = randomBlocks(rnd, 23);
        List<boolean[]> masks = randomMasks(rnd, 23);
        Written a = writeBlocks("train/part-00000.arrow", blocks, masks, 5);
        Written b = writeBlocks("train/part-00000.arrow", blocks, masks, 5);
        assertArrayEquals(a.bytes(), b.bytes());
        assertEquals(CorpusReaderTest.sha256(a.bytes()), a.shard().sha256());
        Files.createDirectories(dir.resolve("train"));
        Files.write(dir.resolve("train/part-00000.arrow"), a.bytes());

        ShardManifest m = manifest(SEQ, List.of(a.shard()), List.of());
        TokenBlocks read = ArrowShardReader.readBlocks(CONF, dir.toString(), m, ShardManifest.TRAIN, 0);
        assertEquals(23, read.size());
        for (int i = 0; i < 23; i++) {
            assertArrayEquals(blocks.get(i), read.block(i));
            assertArrayEquals(masks.get(i), read.mask(i));
        }
        assertEquals(23, ArrowShardReader.readSplit(CONF, dir.toString(), m, ShardManifest.TRAIN).size());

        // a random-access reader (as pyarrow uses) finds the batches through the footer
        try (BufferAllocator allocator = ArrowMemory.newAllocator();
             ArrowFileReader file = new ArrowFileReader(new SeekableReadChannel(new ByteArrayReadableSeekableByteChannel(a.bytes())), allocator)) {
            assertEquals(5, file.getRecordBlocks().size());
            long rows = 0;
            while (file.loadNextBatch()) rows += file.getVectorSchemaRoot().getRowCount();
            assertEquals(23, rows);
            assertEquals(ShardSchema.blocks(SEQ), file.getVectorSchemaRoot().getSchema());
        }
    }

    @Test
    void anEmptyShardIsAValidFile() throws IOException {
        Written a = writeBlocks("e.arrow", List.of(), List.of(), 5);
        Files.write(dir.resolve("e.arrow"), a.bytes());
        assertEquals(0, ArrowShardReader.readBlocks(CONF, dir.toString(), manifest(SEQ, List.of(a.shard()), List.of()), a.shard()).size());
    }

    @Test
    void validationExamplesRoundTrip() throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        List<ValidationExample> written = new ArrayList<>();
        Random rnd = new Random(5);
        ShardManifest.Shard shard;
        try (ArrowShardWriter w = ArrowShardWriter.validationExamples(out)) {
            for (int i = 0; i < 600; i++) {
                ValidationExample e = new ValidationExample(rnd.ints(rnd.nextInt(20), 0, 300).toArray(), rnd.nextInt(2));
                written.add(e);
                w.writeExample(e.promptIds(), e.label());
            }
            w.finish();
            shard = new ShardManifest.Shard("validation-examples/part-00000.arrow", w.rows(), 600, 0, 0, w.sha256());
        }
        Files.createDirectories(dir.resolve("validation-examples"));
        Files.write(dir.resolve(shard.file()), out.toByteArray());
        List<ValidationExample> read = ArrowShardReader.readValidationExamples(CONF, dir.toString(), manifest(SEQ, List.of(), List.of(shard)));
        assertEquals(600, read.size());
        for (int i = 0; i < 600; i++) {
            assertArrayEquals(written.get(i).promptIds(), read.get(i).promptIds());
            assertEquals(written.get(i).label(), read.get(i).label());
        }
    }

    @Test
    void aChangedShardFailsItsChecksum() throws IOException {
        Random rnd = new Random(4);
        Written a = writeBlocks("p.arrow", randomBlocks(rnd, 4), randomMasks(rnd, 4), 256);
        byte[] corrupted = a.bytes().clone();
        corrupted[corrupted.length / 2] ^= 1;
        Files.write(dir.resolve("p.arrow"), corrupted);
        ShardManifest m = manifest(SEQ, List.of(a.shard()), List.of());
        IOException e = assertThrows(IOException.class, () -> ArrowShardReader.readSplit(CONF, dir.toString(), m, ShardManifest.TRAIN));
        assertTrue(e.getMessage().contains("p.arrow: sha256 ") && e.getMessage().contains("does not match manifest " + a.shard().sha256())
                && e.getMessage().contains("(file changed or corrupted)"), e.getMessage());

        Files.write(dir.resolve("p.arrow"), new byte[]{1, 2, 3});
        e = assertThrows(IOException.class, () -> ArrowShardReader.readSplit(CONF, dir.toString(), m, ShardManifest.TRAIN));
        assertTrue(e.getMessage().contains("does not match manifest"), e.getMessage());
    }

    @Test
    void aShardWhoseSchemaDiffersFromTheManifestNamesTheColumn() throws IOException {
        Random rnd = new Random(4);
        Written a = writeBlocks("p.arrow", randomBlocks(rnd, 4), randomMasks(rnd, 4), 256);
        Files.write(dir.resolve("p.arrow"), a.bytes());
        ShardManifest claimsLonger = manifest(SEQ * 2, List.of(a.shard()), List.of());
        IOException e = assertThrows(IOException.class, () -> ArrowShardReader.readSplit(CONF, dir.toString(), claimsLonger, ShardManifest.TRAIN));
        assertTrue(e.getMessage().contains("p.arrow: column input_ids is FixedSizeList(9)") && e.getMessage().contains("expects FixedSizeList(17)"), e.getMessage());

        // blocks where the manifest lists validation examples
        ShardManifest.Shard asExamples = new ShardManifest.Shard("p.arrow", 4, 0, 0, 0, a.shard().sha256());
        ShardManifest m = manifest(SEQ, List.of(), List.of(asExamples));
        e = assertThrows(IOException.class, () -> ArrowShardReader.readValidationExamples(CONF, dir.toString(), m));
        assertTrue(e.getMessage().contains("p.arrow: column prompt_ids is missing"), e.getMessage());
    }

    @Test
    void aRowCountThatDiffersFromTheManifestIsAnError() throws IOException {
        Random rnd = new Random(4);
        Written a = writeBlocks("p.arrow", randomBlocks(rnd, 4), randomMasks(rnd, 4), 256);
        Files.write(dir.resolve("p.arrow"), a.bytes());
        ShardManifest.Shard lying = new ShardManifest.Shard("p.arrow", 5, 0, 0, 0, a.shard().sha256());
        IOException e = assertThrows(IOException.class, () -> ArrowShardReader.readSplit(CONF, dir.toString(), manifest(SEQ, List.of(lying), List.of()), ShardManifest.TRAIN));
        assertTrue(e.getMessage().contains("4 rows, but the manifest says 5"), e.getMessage());
    }

    @Test
    void missingShardIsNamed() {
        ShardManifest.Shard s = new ShardManifest.Shard("train/part-00007.arrow", 1, 1, 1, 1, "00");
        IOException e = assertThrows(IOException.class, () -> ArrowShardReader.readSplit(CONF, dir.toString(), manifest(SEQ, List.of(s), List.of()), ShardManifest.TRAIN));
        assertTrue(e.getMessage().contains("part-00007.arrow") && e.getMessage().contains("does not exist"), e.getMessage());
    }

    @Test
    void manifestRoundTripsAndChecksTheTokenizer() throws IOException {
        ShardManifest.Shard s = new ShardManifest.Shard("train/part-00000.arrow", 3, 4, 50, 45, "ab");
        ShardManifest m = manifest(SEQ, List.of(s), List.of(new ShardManifest.Shard("validation-examples/part-00000.arrow", 2, 2, 0, 0, "cd")));
        m.write(CONF, dir.toString());
        ShardManifest back = ShardManifest.read(CONF, dir.toString());
        assertArrayEquals(m.toJson(), back.toJson());
        assertEquals(List.of(ShardManifest.TRAIN, ShardManifest.VALIDATION_EXAMPLES), List.copyOf(back.splits().keySet()));
        assertEquals(3, back.rows(ShardManifest.TRAIN));
        assertArrayEquals(new int[]{6, 7}, back.labels().get(1).ids());
        String json = HadoopFiles.readString(CONF, HadoopFiles.resolve(dir.toString(), ShardManifest.FILE_NAME));
        assertTrue(json.contains("\"tokenizer_fingerprint\" : \"f\""), json);

        back.checkTokenizer("f");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> back.checkTokenizer("g"));
        assertTrue(e.getMessage().contains("tokenizer sha256 f") && e.getMessage().contains("has sha256 g"), e.getMessage());

        Files.writeString(dir.resolve(ShardManifest.FILE_NAME), json.replace("\"seed\"", "\"sede\""));
        IOException bad = assertThrows(IOException.class, () -> ShardManifest.read(CONF, dir.toString()));
        assertTrue(bad.getMessage().contains("manifest.json"), bad.getMessage());
    }
}
