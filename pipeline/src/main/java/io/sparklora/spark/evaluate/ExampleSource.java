package io.sparklora.spark.evaluate;

import org.apache.hadoop.conf.Configuration;

import java.io.Serializable;
import java.util.List;

/** Labelled validation examples, one list per partition, plus each label's continuation tokens. */
public interface ExampleSource extends Serializable {
    int partitions();

    List<LabelledExample> load(int partition, Configuration conf);

    /** Token ids of each label as it follows the prompt (" ham", " spam", ...). */
    List<int[]> labelTokens();

    /** The labels' names, in label order (their UTF-8 length, with the leading space, normalises acc_norm). */
    List<String> labelNames();
}
