package io.sparklora.spark.evaluate;

import io.sparklora.data.ArrowShardReader;
import io.sparklora.data.ShardManifest;
import io.sparklora.data.ValidationExample;
import org.apache.hadoop.conf.Configuration;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** The labelled validation examples of a tokenized dataset, one Arrow shard per partition. */
public final class ArrowExamples implements ExampleSource {
    private static final long serialVersionUID = 1L;
    private final String dirUri;
    private final ShardManifest manifest;

    public ArrowExamples(String dirUri, ShardManifest manifest) {
        this.dirUri = dirUri;
        this.manifest = manifest;
    }

    @Override public int partitions() { return manifest.split(ShardManifest.VALIDATION_EXAMPLES).size(); }

    @Override
    public List<LabelledExample> load(int partition, Configuration conf) {
        ShardManifest.Shard shard = manifest.split(ShardManifest.VALIDATION_EXAMPLES).get(partition);
        ShardManifest one = new ShardManifest(manifest.schemaVersion(), manifest.dataset(), manifest.tokenizerFingerprint(),
                manifest.vocabSize(), manifest.eosTokenId(), manifest.padTokenId(), manifest.seqLen(), manifest.validationFraction(),
                manifest.seed(), manifest.labelPrompt(), manifest.labels(), Map.of(ShardManifest.VALIDATION_EXAMPLES, List.of(shard)), manifest.sources(), manifest.objective());
        try {
            List<LabelledExample> out = new ArrayList<>();
            for (ValidationExample e : ArrowShardReader.readValidationExamples(conf, dirUri, one)) out.add(new LabelledExample(e.promptIds(), e.label()));
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(e.getMessage(), e);
        }
    }

    @Override
    public List<String> labelNames() {
        return manifest.labels().stream().map(ShardManifest.Label::name).toList();
    }

    @Override
    public List<int[]> labelTokens() {
        List<int[]> t = new ArrayList<>();
        for (ShardManifest.Label l : manifest.labels()) t.add(l.ids());
        return t;
    }
}
