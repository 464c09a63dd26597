package io.sparklora.model;

import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

import java.util.HashMap;
import java.util.Map;

/**
 * Trainable replacements for a few rows of the token embedding (PEFT's trainable tokens,
 * {@code trainable_token_indices}): wherever token {@code indices[j]} is embedded, the model reads
 * {@code rows[j]} instead of the frozen row, and, when the output head is tied to the embedding, its logit
 * is {@code h · rows[j]} too. The frozen embedding is never written; training a handful of rows costs
 * {@code n · C} parameters instead of the whole {@code V · C} matrix.
 *
 * <p>Shapes: {@code indices} [n] (distinct token ids), {@code rows} [n, C], initialised by the caller (PEFT
 * starts them at the frozen rows' values, so attaching changes nothing until they train).
 */
public final class TokenRows {
    private final int[] indices;
    private final Parameter rows;
    private final Map<Integer, Integer> slots = new HashMap<>();

    public TokenRows(int[] indices, Parameter rows) {
        if (indices.length == 0) throw new IllegalArgumentException("trainable tokens: no token indices");
        if (rows.value().rank() != 2 || rows.value().size(0) != indices.length) {
            throw new IllegalArgumentException("trainable tokens: rows of shape " + java.util.Arrays.toString(rows.value().shape())
                    + " for " + indices.length + " token indices");
        }
        this.indices = indices.clone();
        this.rows = rows;
        for (int j = 0; j < indices.length; j++) {
            if (indices[j] < 0) throw new IllegalArgumentException("trainable tokens: negative token index " + indices[j]);
            if (slots.put(indices[j], j) != null) throw new IllegalArgumentException("trainable tokens: token index " + indices[j] + " is listed twice");
        }
    }

    /** The replaced token ids, in row order. */
    public int[] indices() { return indices.clone(); }

    /** The replacement rows [n, C]. */
    public Parameter rows() { return rows; }

    /** Row of token {@code id}, or -1 when the token keeps its frozen row. */
    public int slot(int id) {
        Integer s = slots.get(id);
        return s == null ? -1 : s;
    }

    /** The token ids as an INT vector, for gathers and scatters. */
    INDArray indexArray() {
        return Nd4j.createFromArray(indices).castTo(DataType.INT);
    }
}
