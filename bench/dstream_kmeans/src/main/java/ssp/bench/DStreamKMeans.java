package ssp.bench;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.File;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.spark.SparkConf;
import org.apache.spark.mllib.clustering.StreamingKMeans;
import org.apache.spark.mllib.clustering.StreamingKMeansModel;
import org.apache.spark.mllib.linalg.Vector;
import org.apache.spark.mllib.linalg.Vectors;
import org.apache.spark.streaming.Durations;
import org.apache.spark.streaming.api.java.JavaDStream;
import org.apache.spark.streaming.api.java.JavaInputDStream;
import org.apache.spark.streaming.api.java.JavaStreamingContext;
import org.apache.spark.streaming.kafka010.ConsumerStrategies;
import org.apache.spark.streaming.kafka010.HasOffsetRanges;
import org.apache.spark.streaming.kafka010.KafkaUtils;
import org.apache.spark.streaming.kafka010.LocationStrategies;
import org.apache.spark.streaming.kafka010.OffsetRange;
import org.apache.spark.streaming.scheduler.BatchInfo;
import org.apache.spark.streaming.scheduler.StreamingListener;
import org.apache.spark.streaming.scheduler.StreamingListenerBatchCompleted;

/**
 * Spark MLlib's streaming k-means the way a user runs it today: a direct Kafka DStream
 * (spark-streaming-kafka-0-10) of the points' JSON values, parsed into Vectors, and
 * {@code StreamingKMeans.trainOn}. It reads {@code --topic} from the earliest offset until
 * {@code --n} records have gone through, then prints one JSON object: the batches (records,
 * processing start and end in epoch ms, scheduling delay) and the final centres and weights.
 *
 * <p>Arguments ({@code --name value}): bootstrap, topic, n, k, dim, decay, centres (a JSON file:
 * {"centres": [[...], ...], "weights": [...]}), batch-ms, max-rate-per-partition, timeout-s, and
 * optionally master (else spark-submit's).
 */
public final class DStreamKMeans {

  private DStreamKMeans() {}

  /** The coordinates of one point value, or null when it is not a point of {@code dim} finite numbers. */
  static Vector parse(ObjectMapper mapper, byte[] value, int dim) {
    if (value == null) {
      return null;
    }
    try {
      JsonNode x = mapper.readTree(value).get("x");
      if (x == null || !x.isArray() || x.size() != dim) {
        return null;
      }
      double[] coordinates = new double[dim];
      for (int i = 0; i < dim; i++) {
        JsonNode number = x.get(i);
        if (!number.isNumber() || !Double.isFinite(number.doubleValue())) {
          return null;
        }
        coordinates[i] = number.doubleValue();
      }
      return Vectors.dense(coordinates);
    } catch (java.io.IOException err) {
      return null;
    }
  }

  private static Map<String, String> options(String[] args) {
    Map<String, String> options = new HashMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      if (!args[i].startsWith("--")) {
        throw new IllegalArgumentException("expected --name value pairs, got " + args[i]);
      }
      options.put(args[i].substring(2), args[i + 1]);
    }
    return options;
  }

  private static String need(Map<String, String> options, String name) {
    String value = options.get(name);
    if (value == null) {
      throw new IllegalArgumentException("missing --" + name);
    }
    return value;
  }

  public static void main(String[] args) throws Exception {
    Map<String, String> options = options(args);
    String bootstrap = need(options, "bootstrap");
    String topic = need(options, "topic");
    long n = Long.parseLong(need(options, "n"));
    int k = Integer.parseInt(need(options, "k"));
    int dim = Integer.parseInt(need(options, "dim"));
    double decay = Double.parseDouble(need(options, "decay"));
    long batchMs = Long.parseLong(need(options, "batch-ms"));
    long maxRate = Long.parseLong(need(options, "max-rate-per-partition"));
    String master = options.get("master");  // else spark-submit's --master
    long timeoutSeconds = Long.parseLong(options.getOrDefault("timeout-s", "600"));

    ObjectMapper mapper = new ObjectMapper();
    JsonNode start = mapper.readTree(new File(need(options, "centres")));
    Vector[] centres = new Vector[k];
    double[] weights = new double[k];
    for (int c = 0; c < k; c++) {
      double[] centre = new double[dim];
      for (int i = 0; i < dim; i++) {
        centre[i] = start.get("centres").get(c).get(i).doubleValue();
      }
      centres[c] = Vectors.dense(centre);
      weights[c] = start.get("weights").get(c).doubleValue();
    }

    SparkConf conf = new SparkConf()
        .setAppName("ssp-bench-dstream-kmeans")
        .set("spark.streaming.kafka.maxRatePerPartition", Long.toString(maxRate))
        .set("spark.streaming.backpressure.enabled", "false")
        .set("spark.ui.showConsoleProgress", "false");
    if (master != null) {
      conf.setMaster(master);
    }
    JavaStreamingContext jssc = new JavaStreamingContext(conf, Durations.milliseconds(batchMs));
    jssc.sparkContext().setLogLevel(System.getenv().getOrDefault("SSP_SPARK_LOG_LEVEL", "WARN"));

    Map<String, Object> kafka = new HashMap<>();
    kafka.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    kafka.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
    kafka.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
    kafka.put(ConsumerConfig.GROUP_ID_CONFIG, "ssp-bench-dstream-" + System.nanoTime());
    kafka.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    kafka.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, false);
    JavaInputDStream<ConsumerRecord<byte[], byte[]>> records = KafkaUtils.createDirectStream(
        jssc, LocationStrategies.PreferConsistent(),
        ConsumerStrategies.<byte[], byte[]>Subscribe(List.of(topic), kafka));
    JavaDStream<Vector> points = records.mapPartitions(partition -> {
      ObjectMapper parser = new ObjectMapper();
      List<Vector> out = new ArrayList<>();
      while (partition.hasNext()) {
        Vector point = parse(parser, partition.next().value(), dim);
        if (point != null) {
          out.add(point);
        }
      }
      return out.iterator();
    });

    StreamingKMeans kmeans = new StreamingKMeans().setK(k).setDecayFactor(decay).setInitialCenters(centres, weights);
    kmeans.trainOn(points);
    // after trainOn's output operation in the same batch: the model of the batch that reached n records
    // (the batches after it are empty, and an empty batch still discounts the weights)
    double[][] finalCentres = new double[k][];
    double[] finalWeights = new double[k];
    CountDownLatch modelTaken = new CountDownLatch(1);
    long[] offsetsSeen = {0};
    records.foreachRDD(rdd -> {
      if (offsetsSeen[0] >= n) {
        return;
      }
      for (OffsetRange range : ((HasOffsetRanges) rdd.rdd()).offsetRanges()) {
        offsetsSeen[0] += range.count();
      }
      if (offsetsSeen[0] >= n) {
        StreamingKMeansModel model = kmeans.latestModel();
        for (int c = 0; c < k; c++) {
          finalCentres[c] = model.clusterCenters()[c].toArray().clone();
          finalWeights[c] = model.clusterWeights()[c];
        }
        modelTaken.countDown();
      }
    });

    List<long[]> batches = new ArrayList<>();  // records, processing start, end (epoch ms), scheduling delay (ms)
    CountDownLatch done = new CountDownLatch(1);
    jssc.ssc().addStreamingListener(new StreamingListener() {
      private long seen;

      @Override
      public void onBatchCompleted(StreamingListenerBatchCompleted completed) {
        BatchInfo info = completed.batchInfo();
        if (seen >= n || info.numRecords() == 0) {
          return;
        }
        seen += info.numRecords();
        synchronized (batches) {
          batches.add(new long[] {info.numRecords(), (Long) info.processingStartTime().get(),
              (Long) info.processingEndTime().get(), (Long) info.schedulingDelay().get()});
        }
        if (seen >= n) {
          done.countDown();
        }
      }
    });

    long started = System.currentTimeMillis();
    jssc.start();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(timeoutSeconds);
    boolean finished = modelTaken.await(timeoutSeconds, TimeUnit.SECONDS)
        && done.await(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
    ObjectNode result = mapper.createObjectNode();
    result.put("finished", finished);
    result.put("started_ms", started);
    ArrayNode batchRows = result.putArray("batches");
    synchronized (batches) {
      for (long[] batch : batches) {
        ArrayNode row = batchRows.addArray();
        for (long value : batch) {
          row.add(value);
        }
      }
    }
    ArrayNode centreRows = result.putArray("centres");
    for (double[] centre : finished ? finalCentres : new double[0][]) {
      ArrayNode row = centreRows.addArray();
      for (double value : centre) {
        row.add(value);
      }
    }
    ArrayNode weightRow = result.putArray("weights");
    for (double weight : finished ? finalWeights : new double[0]) {
      weightRow.add(weight);
    }
    jssc.stop(true, false);
    System.out.println(mapper.writeValueAsString(result));
    System.exit(finished ? 0 : 2);
  }
}
