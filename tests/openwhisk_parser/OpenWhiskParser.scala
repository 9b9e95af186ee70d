// OpenWhisk's reading of a cache-invalidation message, as a test oracle.
//
// OpenWhisk's own jars are not published, so the two formats are written here
// exactly as upstream Apache OpenWhisk defines them:
//   - CacheKey and its jsonFormat2: common/scala/src/main/scala/org/apache/openwhisk/core/entity/CacheKey.scala
//     (upstream's companion also has an apply(key: Any) for entities; it plays no part in reading JSON);
//   - CacheInvalidationMessage, its jsonFormat and parse: common/scala/src/main/scala/org/apache/openwhisk/
//     core/database/RemoteCacheInvalidation.scala, whose removeFromLocalCache decodes a Kafka value with
//     new String(bytes, StandardCharsets.UTF_8) and calls CacheInvalidationMessage.parse on it.
// Compiled by tests/openwhisk_oracle.py with scala-compiler 2.12.10 against spray-json_2.12 1.3.5.
//
// Protocol, one line each way, ASCII only so that no text encoding of the pipes matters:
//   in:  the Kafka value's bytes in hex;
//   out: "ok <mainId> <secondaryId or -> <instanceId> <compact>" where <compact> is what upstream's
//        serialize prints for the parsed message, or "error <Throwable.toString>";
//        every text is "x" followed by its UTF-16 code units in hex, so that any string, lone
//        surrogates and line breaks included, comes back exactly.
// The first line out is "ready", once the formats are initialised.

package openwhiskparser

import java.io.{BufferedReader, InputStreamReader, OutputStreamWriter, BufferedWriter}
import java.nio.charset.StandardCharsets

import scala.util.{Failure, Success, Try}

import spray.json._

case class CacheKey(mainId: String, secondaryId: Option[String])

object CacheKey extends DefaultJsonProtocol {
  implicit val serdes = jsonFormat2(CacheKey.apply)
}

case class CacheInvalidationMessage(key: CacheKey, instanceId: String) {
  def serialize = CacheInvalidationMessage.serdes.write(this).compactPrint
}

object CacheInvalidationMessage extends DefaultJsonProtocol {
  def parse(msg: String) = Try(serdes.read(msg.parseJson))
  implicit val serdes = jsonFormat(CacheInvalidationMessage.apply _, "key", "instanceId")
}

object OpenWhiskParser {
  private val Hex = "0123456789abcdef"

  private def bytesOf(hex: String): Array[Byte] = {
    val bytes = new Array[Byte](hex.length / 2)
    var i = 0
    while (i < bytes.length) {
      bytes(i) = Integer.parseInt(hex.substring(2 * i, 2 * i + 2), 16).toByte
      i += 1
    }
    bytes
  }

  private def text(s: String): String = {
    val sb = new java.lang.StringBuilder(1 + 4 * s.length).append('x')
    var i = 0
    while (i < s.length) {
      val c = s.charAt(i)
      sb.append(Hex.charAt((c >> 12) & 0xf)).append(Hex.charAt((c >> 8) & 0xf))
        .append(Hex.charAt((c >> 4) & 0xf)).append(Hex.charAt(c & 0xf))
      i += 1
    }
    sb.toString
  }

  def answer(value: Array[Byte]): String = {
    val raw = new String(value, StandardCharsets.UTF_8)
    CacheInvalidationMessage.parse(raw) match {
      case Success(msg) =>
        val secondary = msg.key.secondaryId.map(text).getOrElse("-")
        s"ok ${text(msg.key.mainId)} $secondary ${text(msg.instanceId)} ${text(msg.serialize)}"
      case Failure(t) => s"error ${text(t.toString)}"
    }
  }

  def main(args: Array[String]): Unit = {
    val in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII), 1 << 16)
    val out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.US_ASCII), 1 << 16)
    answer("""{"instanceId":"warm-up","key":{"mainId":"guest/hello"}}""".getBytes(StandardCharsets.UTF_8))
    out.write("ready\n")
    out.flush()
    var line = in.readLine()
    while (line != null) {
      out.write(answer(bytesOf(line.trim)))
      out.write('\n')
      // Answers to lines already sent go out together; nothing waits once the input runs dry.
      if (!in.ready()) out.flush()
      line = in.readLine()
    }
    out.flush()
  }
}
