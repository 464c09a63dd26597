package io.sparklora.spark.drop;

import io.sparklora.spark.BaseModelCache;
import io.sparklora.spark.TaskEngine;
import io.sparklora.spark.ShardSource;

import io.sparklora.train.RoundWork;

import io.sparklora.train.AdapterTensors;
import io.sparklora.train.TrainSpec;

import io.sparklora.adapters.Adapter;
import io.sparklora.adapters.AttachedAdapter;
import io.sparklora.adapters.ImportanceProbe;
import io.sparklora.model.Linear;
import io.sparklora.model.TransformerLM;
import io.sparklora.storage.SerializableConfiguration;
import io.sparklora.train.TokenBlocks;
import org.apache.spark.api.java.function.Function2;
import org.apache.spark.broadcast.Broadcast;

import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * LoRA-drop's importance pass on one partition: forward passes (no training) over the partition's
 * sampled blocks with every adapter wrapped in an {@link ImportanceProbe}.
 */
public final class ImportanceTask implements Function2<Integer, Iterator<Integer>, Iterator<ImportanceSums>> {
    private static final long serialVersionUID = 1L;
    private final TrainSpec spec;
    private final ShardSource shards;
    private final Broadcast<AdapterTensors> adapter;
    private final int batchSize;
    private final SerializableConfiguration conf;

    public ImportanceTask(TrainSpec spec, ShardSource shards, Broadcast<AdapterTensors> adapter, int batchSize, SerializableConfiguration conf) {
        this.spec = spec;
        this.shards = shards;
        this.adapter = adapter;
        this.batchSize = batchSize;
        this.conf = conf;
    }

    @Override
    public Iterator<ImportanceSums> call(Integer partition, Iterator<Integer> ignored) {
        TaskEngine.bind();
        ImportanceSums out = new ImportanceSums();
        TokenBlocks data = RoundWork.sample(shards.load(partition, conf.get()), spec.sampleFraction(), spec.options().seed());
        if (data.size() == 0) return List.of(out).iterator();
        TransformerLM model = BaseModelCache.model(spec.base(), conf.get());
        AttachedAdapter a = AttachedAdapter.attach(model, TrainSpec.ADAPTER_NAME, spec.adapter(), spec.options().seed(), spec.shareGroups());
        adapter.value().copyInto(a.stateTensors());
        Map<String, ImportanceProbe> probes = new LinkedHashMap<>();
        for (Map.Entry<String, Adapter> e : a.layers().entrySet()) {
            Linear l = model.linears().get(e.getKey());
            l.detach(TrainSpec.ADAPTER_NAME);
            ImportanceProbe p = new ImportanceProbe(e.getValue());
            l.attach(p);
            probes.put(e.getKey(), p);
        }
        for (int start = 0; start < data.size(); start += batchSize) {
            int n = Math.min(batchSize, data.size() - start);
            int[] idx = new int[n];
            for (int i = 0; i < n; i++) idx[i] = start + i;
            model.loss(data.batch(idx));
        }
        probes.forEach((m, p) -> out.add(m, p.sumSquares(), p.rows()));
        return List.of(out).iterator();
    }
}
