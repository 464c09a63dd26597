package io.sparklora.spark.glora;

import io.sparklora.adapters.glora.GloraStructure;

import java.io.Serializable;
import java.util.Map;

/**
 * One per-layer structure assignment of the GLoRA structure search: every targeted module named with its
 * structure, written as the {@code layer_structures} setting ({@code module=A,B,C,D,E; ...}).
 *
 * @param generation      the generation that first evaluated it (0: the initial population)
 * @param id              its number in the order the search made candidates (0: the configured structure)
 * @param parent          the candidate it is a mutation of, or -1
 * @param layerStructures every targeted module's structure ({@link GloraStructure#formatLayers})
 */
public record Candidate(int generation, int id, int parent, String layerStructures) implements Serializable {
    private static final long serialVersionUID = 1L;

    /** Module → structure, in model order. */
    public Map<String, GloraStructure> structures() { return GloraStructure.parseLayers(layerStructures); }
}
