package io.sparklora.spark.tokenize;

import io.sparklora.data.ArrowShardWriter;
import io.sparklora.data.BlockPacker;
import io.sparklora.data.EncodedDocument;
import io.sparklora.data.ShardManifest;
import io.sparklora.storage.HadoopFiles;
import io.sparklora.storage.SerializableConfiguration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.spark.api.java.function.Function2;
import scala.Tuple2;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;

/**
 * Executor side of the tokenize stage's last step: partition {@code split * shards + shard} packs its
 * (sorted) documents into blocks and streams them into {@code <split>/part-NNNNN.arrow} under the stage's
 * temporary directory; a validation partition of a labelled dataset also writes its documents as
 * {@code validation-examples/part-NNNNN.arrow}. Returns the files' counts and checksums.
 */
public final class TokenizeWriteShards
        implements Function2<Integer, Iterator<Tuple2<TokenizeKey, EncodedDocument>>, Iterator<TokenizeShardResult>> {
    private static final long serialVersionUID = 1L;

    private final SerializableConfiguration conf;
    private final String tmpDir;
    private final int shards;
    private final int seqLen;
    private final int eosId;
    private final int padId;
    private final boolean labelled;
    private final boolean labelObjective;
    private final int maxPromptTokens;

    /**
     * @param labelObjective a labelled document becomes a block of its own whose targets are its label's tokens
     *                       ({@link io.sparklora.data.TrainingObjective#LABEL}); else documents are packed
     * @param maxPromptTokens prompts ({@link EncodedDocument#truncatedPrompt}) keep at most this many tokens:
     *                        {@code seqLen + 1} minus the longest label, so that prompt and label fit one block
     */
    public TokenizeWriteShards(SerializableConfiguration conf, String tmpDir, int shards, int seqLen, int eosId, int padId,
                               boolean labelled, boolean labelObjective, int maxPromptTokens) {
        this.conf = conf;
        this.tmpDir = tmpDir;
        this.shards = shards;
        this.seqLen = seqLen;
        this.eosId = eosId;
        this.padId = padId;
        this.labelled = labelled;
        this.labelObjective = labelObjective;
        this.maxPromptTokens = maxPromptTokens;
    }

    public static String fileName(String split, int part) {
        return split + "/part-" + String.format("%05d", part) + ".arrow";
    }

    @Override
    public Iterator<TokenizeShardResult> call(Integer partition, Iterator<Tuple2<TokenizeKey, EncodedDocument>> docs) throws IOException {
        boolean validation = partition >= shards;
        int part = partition % shards;
        String split = validation ? ShardManifest.VALIDATION : ShardManifest.TRAIN;
        boolean withExamples = validation && labelled;
        Path dir = HadoopFiles.path(tmpDir);
        FileSystem fs = HadoopFiles.fs(dir, conf.get());
        String blocksName = fileName(split, part);
        String examplesName = fileName(ShardManifest.VALIDATION_EXAMPLES, part);
        List<TokenizeShardResult> results = new ArrayList<>();
        try (TokenizeOutputFile blocksFile = new TokenizeOutputFile(fs, new Path(dir, blocksName));
             ArrowShardWriter blocks = ArrowShardWriter.blocks(blocksFile.stream(), seqLen);
             TokenizeOutputFile examplesFile = withExamples ? new TokenizeOutputFile(fs, new Path(dir, examplesName)) : null;
             ArrowShardWriter examples = withExamples ? ArrowShardWriter.validationExamples(examplesFile.stream()) : null) {
            BlockPacker packer = new BlockPacker(seqLen, eosId, padId, blocks::writeBlock);
            long exampleDocs = 0, promptTokens = 0;
            while (docs.hasNext()) {
                EncodedDocument d = docs.next()._2();
                // the cut prompt feeds a text -> label block and a validation example; neither else
                int[] prompt = d.labelled() && (labelObjective || examples != null) ? d.truncatedPrompt(maxPromptTokens, eosId) : null;
                if (labelObjective && d.labelled()) {
                    int[] label = d.labelTokens();
                    int[] block = Arrays.copyOf(prompt, prompt.length + label.length);
                    System.arraycopy(label, 0, block, prompt.length, label.length);
                    boolean[] mask = new boolean[block.length];
                    Arrays.fill(mask, prompt.length, block.length, true);
                    packer.single(block, mask);
                } else {
                    packer.add(d.tokens(), d.lossMask());
                }
                if (examples != null && d.labelled()) {
                    examples.writeExample(prompt, d.label());
                    exampleDocs++;
                    promptTokens += prompt.length;
                }
            }
            packer.finish();
            blocks.finish();
            blocksFile.commit();
            results.add(new TokenizeShardResult(split, part, blocksName, blocks.rows(), packer.documents(), packer.tokens(),
                    packer.targets(), blocks.sha256()));
            if (examples != null) {
                examples.finish();
                examplesFile.commit();
                results.add(new TokenizeShardResult(ShardManifest.VALIDATION_EXAMPLES, part, examplesName, examples.rows(),
                        exampleDocs, promptTokens, 0, examples.sha256()));
            }
        }
        return results.iterator();
    }
}
