package pattern

import (
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// Doc sections the rows come from.
const (
	lambdaSyntax   = "Lambda: Control which events Lambda sends to your function, Filter rule syntax"
	lambdaExamples = "Lambda: Control which events Lambda sends to your function, Filtering examples"
	lambdaMulti    = "Lambda: Control which events Lambda sends to your function, Multi-level filtering"
	lambdaConsole  = "Lambda: Control which events Lambda sends to your function, Attaching filter criteria (console)"
	lambdaBasics   = "Lambda: Control which events Lambda sends to your function, Understanding event filtering basics"
	lambdaKinesis  = "Lambda: Using event filtering with a Kinesis event source, Kinesis event filtering basics"
	lambdaStreams  = "Lambda: Properly filtering Kinesis and DynamoDB messages (poorly formatted data)"
	ebOperators    = "EventBridge: Comparison operators for use in event patterns (summary table)"
	ebPatterns     = "EventBridge: Amazon EventBridge event patterns"
	ebFieldMatch   = "EventBridge: Amazon EventBridge event patterns, Field matching"
	ebValueMatch   = "EventBridge: Amazon EventBridge event patterns, Value matching"
	ebNull         = "EventBridge: Matching null values and empty strings"
	ebArrays       = "EventBridge: Arrays in Amazon EventBridge event patterns"
	ebPrefix       = "EventBridge: Content filtering, Prefix matching"
	ebSuffix       = "EventBridge: Content filtering, Suffix matching"
	ebIgnoreCase   = "EventBridge: Content filtering, Equals-ignore-case matching"
	ebAnythingBut  = "EventBridge: Content filtering, Anything-but matching"
	ebNumeric      = "EventBridge: Content filtering, Numeric matching"
	ebExists       = "EventBridge: Content filtering, Exists matching"
	ebComplex      = "EventBridge: Content filtering, Complex example with multiple matching"
	ebDuplicate    = "EventBridge: Content filtering, note on a key included more than once"
	ebOr           = "EventBridge: Content filtering, Or matching ($or)"
	rulerArrays    = "aws/event-ruler README: JSON Array Matching"
	rulerExample   = "aws/event-ruler README: Ruler by Example"
	rulerNumbers   = "aws/event-ruler JsonRuleCompiler: number literals match by value and by text"
	metadata       = "fanoutd: metadata keys under the names of Lambda's Kinesis event"
)

// The EC2 event of event-ruler's README, also used by EventBridge's pages.
const ec2Event = `{
  "version": "0",
  "id": "ddddd4-aaaa-7777-4444-345dd43cc333",
  "detail-type": "EC2 Instance State-change Notification",
  "source": "aws.ec2",
  "account": "012345679012",
  "time": "2017-10-02T16:24:49Z",
  "region": "us-east-1",
  "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"],
  "detail": {
    "c-count": 5,
    "d-count": 3,
    "x-limit": 301.8,
    "source-ip": "10.0.0.33",
    "instance-id": "i-000000aaaaaa00000",
    "state": "running"
  }
}`

// The Auto Scaling event of EventBridge's field matching and null pages.
const autoscalingEvent = `{
  "version": "0",
  "id": "3e3c153a-8339-4e30-8c35-687ebef853fe",
  "detail-type": "EC2 Instance Launch Successful",
  "source": "aws.autoscaling",
  "account": "123456789012",
  "time": "2015-11-11T21:31:47Z",
  "region": "us-east-1",
  "resources": [],
  "detail": {"eventVersion": "", "responseElements": null}
}`

// The Macie event of EventBridge's value matching example (truncated there too).
const macieEvent = `{
  "version": "0",
  "detail-type": "Macie Alert",
  "source": "aws.macie",
  "detail": {
    "notification-type": "ALERT_CREATED",
    "tags": ["Custom_Alert", "Insider"],
    "risk-score": 80,
    "trigger": {"alert-type": "basic", "risk": 8}
  }
}`

// The Kinesis record data of Lambda's Kinesis filtering page.
const kinesisOrder = `{"record": 12345, "order": {"type": "buy", "stock": "ANYCO", "quantity": 1000}}`

// The data of Lambda's "Understanding event filtering basics" Kinesis event.
const weatherData = `{"City": "Seattle", "State": "WA", "Temperature": "46", "Month": "December"}`

type conformanceRow struct {
	doc     string
	pattern string
	data    string
	pk, seq string
	arrival time.Time
	want    bool
}

var lambdaArrival = time.UnixMilli(1545084650987)

var conformanceRows = []conformanceRow{
	// Lambda's filter rule syntax table, each row's example as a matching and
	// a non-matching record (with the rows of EventBridge's summary table that
	// Lambda's table lacks).
	{doc: lambdaSyntax, pattern: `{"data": {"UserID": [null]}}`, data: `{"UserID": null}`, want: true},
	{doc: lambdaSyntax, pattern: `{"data": {"UserID": [null]}}`, data: `{"UserID": "u1"}`, want: false},
	{doc: lambdaSyntax, pattern: `{"data": {"UserID": [null]}}`, data: `{}`, want: false},
	{doc: lambdaSyntax, pattern: `{"data": {"LastName": [""]}}`, data: `{"LastName": ""}`, want: true},
	{doc: lambdaSyntax, pattern: `{"data": {"LastName": [""]}}`, data: `{"LastName": "Doe"}`, want: false},
	{doc: lambdaSyntax, pattern: `{"data": {"Name": ["Alice"]}}`, data: `{"Name": "Alice"}`, want: true},
	{doc: lambdaSyntax, pattern: `{"data": {"Name": ["Alice"]}}`, data: `{"Name": "alice"}`, want: false},
	{doc: ebOperators, pattern: `{"data": {"Name": [{"equals-ignore-case": "alice"}]}}`, data: `{"Name": "ALICE"}`, want: true},
	{doc: ebOperators, pattern: `{"data": {"Name": [{"equals-ignore-case": "alice"}]}}`, data: `{"Name": "Alicia"}`, want: false},
	{doc: lambdaSyntax, pattern: `{"data": {"Location": ["New York"], "Day": ["Monday"]}}`, data: `{"Location": "New York", "Day": "Monday"}`, want: true},
	{doc: lambdaSyntax, pattern: `{"data": {"Location": ["New York"], "Day": ["Monday"]}}`, data: `{"Location": "New York", "Day": "Tuesday"}`, want: false},
	{doc: lambdaSyntax, pattern: `{"data": {"PaymentType": ["Credit", "Debit"]}}`, data: `{"PaymentType": "Debit"}`, want: true},
	{doc: lambdaSyntax, pattern: `{"data": {"PaymentType": ["Credit", "Debit"]}}`, data: `{"PaymentType": "Cash"}`, want: false},
	{doc: ebOperators, pattern: `{"data": {"$or": [{"Location": ["New York"]}, {"Day": ["Monday"]}]}}`, data: `{"Location": "Boston", "Day": "Monday"}`, want: true},
	{doc: ebOperators, pattern: `{"data": {"$or": [{"Location": ["New York"]}, {"Day": ["Monday"]}]}}`, data: `{"Location": "Boston", "Day": "Friday"}`, want: false},
	{doc: lambdaSyntax, pattern: `{"data": {"Weather": [{"anything-but": ["Raining"]}]}}`, data: `{"Weather": "Sunny"}`, want: true},
	{doc: lambdaSyntax, pattern: `{"data": {"Weather": [{"anything-but": ["Raining"]}]}}`, data: `{"Weather": "Raining"}`, want: false},
	{doc: lambdaSyntax, pattern: `{"data": {"Weather": [{"anything-but": ["Raining"]}]}}`, data: `{"Climate": "Sunny"}`, want: false},
	{doc: lambdaSyntax, pattern: `{"data": {"Price": [{"numeric": ["=", 100]}]}}`, data: `{"Price": 100}`, want: true},
	{doc: lambdaSyntax, pattern: `{"data": {"Price": [{"numeric": ["=", 100]}]}}`, data: `{"Price": 100.0}`, want: true},
	{doc: lambdaSyntax, pattern: `{"data": {"Price": [{"numeric": ["=", 100]}]}}`, data: `{"Price": 1e2}`, want: true},
	{doc: lambdaSyntax, pattern: `{"data": {"Price": [{"numeric": ["=", 100]}]}}`, data: `{"Price": 100.5}`, want: false},
	{doc: lambdaSyntax, pattern: `{"data": {"Price": [{"numeric": ["=", 100]}]}}`, data: `{"Price": "100"}`, want: false},
	{doc: lambdaSyntax, pattern: `{"data": {"Price": [{"numeric": [">", 10, "<=", 20]}]}}`, data: `{"Price": 20}`, want: true},
	{doc: lambdaSyntax, pattern: `{"data": {"Price": [{"numeric": [">", 10, "<=", 20]}]}}`, data: `{"Price": 15.5}`, want: true},
	{doc: lambdaSyntax, pattern: `{"data": {"Price": [{"numeric": [">", 10, "<=", 20]}]}}`, data: `{"Price": 10}`, want: false},
	{doc: lambdaSyntax, pattern: `{"data": {"Price": [{"numeric": [">", 10, "<=", 20]}]}}`, data: `{"Price": 20.01}`, want: false},
	{doc: lambdaSyntax, pattern: `{"data": {"ProductName": [{"exists": true}]}}`, data: `{"ProductName": "Widget"}`, want: true},
	{doc: lambdaSyntax, pattern: `{"data": {"ProductName": [{"exists": true}]}}`, data: `{"Product": "Widget"}`, want: false},
	{doc: lambdaSyntax, pattern: `{"data": {"ProductName": [{"exists": false}]}}`, data: `{"Product": "Widget"}`, want: true},
	{doc: lambdaSyntax, pattern: `{"data": {"ProductName": [{"exists": false}]}}`, data: `{"ProductName": "Widget"}`, want: false},
	{doc: lambdaSyntax, pattern: `{"data": {"Region": [{"prefix": "us-"}]}}`, data: `{"Region": "us-east-1"}`, want: true},
	{doc: lambdaSyntax, pattern: `{"data": {"Region": [{"prefix": "us-"}]}}`, data: `{"Region": "eu-west-1"}`, want: false},
	{doc: ebOperators, pattern: `{"data": {"FileName": [{"suffix": ".png"}]}}`, data: `{"FileName": "cat.png"}`, want: true},
	{doc: ebOperators, pattern: `{"data": {"FileName": [{"suffix": ".png"}]}}`, data: `{"FileName": "cat.PNG"}`, want: false},

	// Lambda's filtering examples: a metadata property and a data property.
	{doc: lambdaExamples, pattern: `{"partitionKey": ["1"], "data": {"Location": ["Los Angeles"]}}`, data: `{"Location": "Los Angeles"}`, pk: "1", want: true},
	{doc: lambdaExamples, pattern: `{"partitionKey": ["1"], "data": {"Location": ["Los Angeles"]}}`, data: `{"Location": "Los Angeles"}`, pk: "2", want: false},
	{doc: lambdaExamples, pattern: `{"partitionKey": ["1"], "data": {"Location": ["Los Angeles"]}}`, data: `{"Location": "San Diego"}`, pk: "1", want: false},
	{doc: lambdaExamples, pattern: `{"data": {"Temperature": [{"numeric": [">", 50, "<=", 60]}]}}`, data: `{"Temperature": 55}`, want: true},
	{doc: lambdaExamples, pattern: `{"data": {"Temperature": [{"numeric": [">", 50, "<=", 60]}]}}`, data: `{"Temperature": 50}`, want: false},
	{doc: lambdaMulti, pattern: `{"data": {"Keys": {"Id": {"N": ["101"]}}}}`, data: `{"Keys": {"Id": {"N": "101"}}, "NewImage": {"Message": {"S": "New item!"}, "Id": {"N": "101"}}, "SequenceNumber": "111", "SizeBytes": 26}`, want: true},
	{doc: lambdaMulti, pattern: `{"data": {"Keys": {"Id": {"N": ["101"]}}}}`, data: `{"Keys": {"Id": {"N": "102"}}}`, want: false},
	{doc: lambdaConsole, pattern: `{"data": {"a": [1, 2]}}`, data: `{"a": 2}`, want: true},
	{doc: lambdaConsole, pattern: `{"data": {"a": [1, 2]}}`, data: `{"a": 3}`, want: false},
	{doc: lambdaConsole, pattern: `{"data": {"a": [1, 2]}}`, data: `{"a": "1"}`, want: false},
	{doc: lambdaBasics, pattern: `{"partitionKey": ["1"], "data": {"City": ["Seattle"]}}`, data: weatherData, pk: "1", seq: "49590338271490256608559692538361571095921575989136588898", arrival: lambdaArrival, want: true},
	// Temperature is the string "46" in that event: numeric matching works with JSON numbers only.
	{doc: lambdaBasics, pattern: `{"data": {"Temperature": [{"numeric": [">", 40]}]}}`, data: weatherData, want: false},
	{doc: lambdaBasics, pattern: `{"data": {"Temperature": ["46"]}}`, data: weatherData, want: true},

	// Lambda's Kinesis page: the order type example.
	{doc: lambdaKinesis, pattern: `{"data": {"order": {"type": ["buy"]}}}`, data: kinesisOrder, want: true},
	{doc: lambdaKinesis, pattern: `{"data": {"order": {"type": ["buy"]}}}`, data: `{"record": 12346, "order": {"type": "sell", "stock": "ANYCO", "quantity": 1000}}`, want: false},

	// Lambda's rule for data that is not JSON, quoted from "Properly filtering
	// Kinesis and DynamoDB messages": "To properly filter events from stream
	// event sources, both the data field and your filter criteria for the data
	// field must be in valid JSON format. [...] Non-JSON | Valid JSON | Lambda
	// drops the record. Non-JSON | No filter pattern for data properties |
	// Lambda filters (on the other metadata properties only) based on your
	// filter criteria. Valid JSON | No filter pattern for data properties |
	// Lambda filters (on the other metadata properties only) based on your
	// filter criteria." (A filter pattern for data that is not JSON is refused
	// when the mapping is created: here, Parse refuses a data part that is not
	// an object.)
	{doc: lambdaStreams, pattern: `{"data": {"order": {"type": ["buy"]}}}`, data: `order type=buy`, want: false},
	{doc: lambdaStreams, pattern: `{"data": {"order": [{"exists": false}]}}`, data: `order type=buy`, want: false},
	{doc: lambdaStreams, pattern: `{"data": {"order": {"type": ["buy"]}}, "partitionKey": ["1"]}`, data: `not json`, pk: "1", want: false},
	{doc: lambdaStreams, pattern: `{"$or": [{"data": {"type": ["buy"]}}, {"partitionKey": ["1"]}]}`, data: `not json`, pk: "1", want: false},
	{doc: lambdaStreams, pattern: `{"partitionKey": ["1"]}`, data: `not json`, pk: "1", want: true},
	{doc: lambdaStreams, pattern: `{"partitionKey": ["1"]}`, data: `not json`, pk: "2", want: false},
	{doc: lambdaStreams, pattern: `{"partitionKey": ["1"]}`, data: kinesisOrder, pk: "1", want: true},
	{doc: lambdaStreams, pattern: `{"data": {"order": {"type": ["buy"]}}}`, data: ``, want: false},

	// EventBridge's event patterns page.
	{doc: ebPatterns, pattern: `{"data": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"], "detail": {"state": ["running"]}}}`, data: ec2Event, want: true},
	{doc: ebPatterns, pattern: `{"data": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"], "detail": {"state": ["terminated"]}}}`, data: ec2Event, want: false},
	{doc: ebPatterns, pattern: `{"data": {"source": ["aws.ec2", "aws.fargate"]}}`, data: ec2Event, want: true},
	{doc: ebPatterns, pattern: `{"data": {"source": ["aws.ec2", "aws.fargate"]}}`, data: autoscalingEvent, want: false},
	// "For strings, EventBridge uses exact character-by-character matching
	// without case-folding or any other string normalization."
	{doc: ebPatterns, pattern: `{"data": {"source": ["AWS.EC2"]}}`, data: ec2Event, want: false},
	{doc: ebFieldMatch, pattern: `{"data": {"source": ["aws.autoscaling"], "detail-type": ["EC2 Instance Launch Successful"], "detail": {"responseElements": [null]}}}`, data: autoscalingEvent, want: true},
	{doc: ebValueMatch, pattern: `{"data": {"source": ["aws.macie"], "detail-type": ["Macie Alert"], "detail": {"risk-score": [80], "trigger": {"risk": [8]}}}}`, data: macieEvent, want: true},
	{doc: ebValueMatch, pattern: `{"data": {"detail": {"risk-score": [80], "trigger": {"risk": [9]}}}}`, data: macieEvent, want: false},

	// Null values and empty strings.
	{doc: ebNull, pattern: `{"data": {"detail": {"eventVersion": [""]}}}`, data: autoscalingEvent, want: true},
	{doc: ebNull, pattern: `{"data": {"detail": {"responseElements": [null]}}}`, data: autoscalingEvent, want: true},
	// "Null values and empty strings are not interchangeable in pattern matching."
	{doc: ebNull, pattern: `{"data": {"detail": {"responseElements": [""]}}}`, data: autoscalingEvent, want: false},
	{doc: ebNull, pattern: `{"data": {"detail": {"eventVersion": [null]}}}`, data: autoscalingEvent, want: false},

	// Arrays.
	{doc: ebArrays, pattern: `{"data": {"resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f", "arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f", "arn:aws:ec2:us-east-1:444455556666:instance/i-b188560f"]}}`,
		data: `{"resources": ["arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:eb56d16b-bbf0-401d-b893-d5978ed4a025:autoScalingGroupName/ASGTerminate", "arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f"]}`, want: true},
	{doc: ebArrays, pattern: `{"data": {"resources": ["arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f"]}}`,
		data: `{"resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f"]}`, want: false},
	{doc: ebArrays, pattern: `{"data": {"resources": [{"exists": true}]}}`, data: autoscalingEvent, want: false},
	{doc: ebArrays, pattern: `{"data": {"resources": [{"exists": false}]}}`, data: autoscalingEvent, want: true},
	{doc: rulerArrays, pattern: `{"data": {"employees": {"firstName": ["Anna"]}}}`,
		data: `{"employees": [{"firstName": "John", "lastName": "Doe"}, {"firstName": "Anna", "lastName": "Smith"}, {"firstName": "Peter", "lastName": "Jones"}]}`, want: true},
	{doc: rulerArrays, pattern: `{"data": {"employees": {"firstName": ["Anna"]}}}`,
		data: `{"employees": [[{"firstName": "John", "lastName": "Doe"}, {"firstName": "Anna", "lastName": "Smith"}], [{"firstName": "Peter", "lastName": "Jones"}]]}`, want: true},
	// rulesForJSONEvent "will refuse to recognize any match in which any two
	// fields are within JSON objects that are in different elements of the same array".
	{doc: rulerArrays, pattern: `{"data": {"employees": {"firstName": ["Anna"], "lastName": ["Jones"]}}}`,
		data: `{"employees": [{"firstName": "John", "lastName": "Doe"}, {"firstName": "Anna", "lastName": "Smith"}, {"firstName": "Peter", "lastName": "Jones"}]}`, want: false},
	{doc: rulerArrays, pattern: `{"data": {"employees": {"firstName": ["Anna"], "lastName": ["Smith"]}}}`,
		data: `{"employees": [{"firstName": "John", "lastName": "Doe"}, {"firstName": "Anna", "lastName": "Smith"}, {"firstName": "Peter", "lastName": "Jones"}]}`, want: true},
	{doc: rulerExample, pattern: `{"data": {"detail-type": ["EC2 Instance State-change Notification"], "resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-000000aaaaaa00000"], "detail": {"state": ["initializing", "running"]}}}`, data: ec2Event, want: true},

	// Prefix, suffix and ignore-case matching.
	{doc: ebPrefix, pattern: `{"data": {"time": [{"prefix": "2017-10-02"}]}}`, data: ec2Event, want: true},
	{doc: ebPrefix, pattern: `{"data": {"time": [{"prefix": "2017-10-03"}]}}`, data: ec2Event, want: false},
	{doc: ebPrefix, pattern: `{"data": {"detail": {"service": [{"prefix": {"equals-ignore-case": "EventB"}}]}}}`, data: `{"detail": {"service": "eventbridge"}}`, want: true},
	{doc: ebPrefix, pattern: `{"data": {"detail": {"service": [{"prefix": {"equals-ignore-case": "EventB"}}]}}}`, data: `{"detail": {"service": "EVENTBRIDGE"}}`, want: true},
	{doc: ebPrefix, pattern: `{"data": {"detail": {"service": [{"prefix": {"equals-ignore-case": "EventB"}}]}}}`, data: `{"detail": {"service": "lambda"}}`, want: false},
	{doc: ebPrefix, pattern: `{"data": {"c-count": [{"prefix": "5"}]}}`, data: `{"c-count": 5}`, want: false},
	{doc: ebSuffix, pattern: `{"data": {"FileName": [{"suffix": ".png"}]}}`, data: `{"FileName": "image.png"}`, want: true},
	{doc: ebSuffix, pattern: `{"data": {"detail": {"FileName": [{"suffix": {"equals-ignore-case": ".png"}}]}}}`, data: `{"detail": {"FileName": "IMAGE.PNG"}}`, want: true},
	{doc: ebSuffix, pattern: `{"data": {"detail": {"FileName": [{"suffix": {"equals-ignore-case": ".png"}}]}}}`, data: `{"detail": {"FileName": "image.jpg"}}`, want: false},
	{doc: ebIgnoreCase, pattern: `{"data": {"detail-type": [{"equals-ignore-case": "ec2 instance state-change notification"}]}}`, data: ec2Event, want: true},
	{doc: ebIgnoreCase, pattern: `{"data": {"source": [{"equals-ignore-case": "EC2"}]}}`, data: ec2Event, want: false},

	// Anything-but.
	{doc: ebAnythingBut, pattern: `{"data": {"detail": {"state": [{"anything-but": "initializing"}]}}}`, data: ec2Event, want: true},
	{doc: ebAnythingBut, pattern: `{"data": {"detail": {"state": [{"anything-but": "running"}]}}}`, data: ec2Event, want: false},
	{doc: ebAnythingBut, pattern: `{"data": {"detail": {"x-limit": [{"anything-but": 123}]}}}`, data: ec2Event, want: true},
	{doc: ebAnythingBut, pattern: `{"data": {"detail": {"x-limit": [{"anything-but": 123}]}}}`, data: `{"detail": {"x-limit": 123}}`, want: false},
	{doc: ebAnythingBut, pattern: `{"data": {"detail": {"x-limit": [{"anything-but": 123}]}}}`, data: `{"detail": {"x-limit": 123.0}}`, want: false},
	{doc: ebAnythingBut, pattern: `{"data": {"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}}}`, data: ec2Event, want: true},
	{doc: ebAnythingBut, pattern: `{"data": {"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}}}`, data: `{"detail": {"state": "stopped"}}`, want: false},
	{doc: ebAnythingBut, pattern: `{"data": {"detail": {"x-limit": [{"anything-but": [100, 200, 300]}]}}}`, data: ec2Event, want: true},
	{doc: ebAnythingBut, pattern: `{"data": {"detail": {"x-limit": [{"anything-but": [100, 200, 300]}]}}}`, data: `{"detail": {"x-limit": 200}}`, want: false},
	{doc: ebAnythingBut, pattern: `{"data": {"detail": {"state": [{"anything-but": {"prefix": "init"}}]}}}`, data: ec2Event, want: true},
	{doc: ebAnythingBut, pattern: `{"data": {"detail": {"state": [{"anything-but": {"prefix": "init"}}]}}}`, data: `{"detail": {"state": "initializing"}}`, want: false},
	{doc: ebOperators, pattern: `{"data": {"Region": [{"anything-but": {"prefix": "us-"}}]}}`, data: `{"Region": "eu-west-1"}`, want: true},
	{doc: ebOperators, pattern: `{"data": {"Region": [{"anything-but": {"prefix": "us-"}}]}}`, data: `{"Region": "us-east-1"}`, want: false},
	{doc: ebAnythingBut, pattern: `{"data": {"detail": {"FileName": [{"anything-but": {"suffix": ".txt"}}]}}}`, data: `{"detail": {"FileName": "notes.md"}}`, want: true},
	{doc: ebAnythingBut, pattern: `{"data": {"detail": {"FileName": [{"anything-but": {"suffix": ".txt"}}]}}}`, data: `{"detail": {"FileName": "notes.txt"}}`, want: false},
	{doc: ebAnythingBut, pattern: `{"data": {"detail": {"state": [{"anything-but": {"equals-ignore-case": "initializing"}}]}}}`, data: `{"detail": {"state": "INITIALIZING"}}`, want: false},
	{doc: ebAnythingBut, pattern: `{"data": {"detail": {"state": [{"anything-but": {"equals-ignore-case": ["Stopped", "overloaded"]}}]}}}`, data: `{"detail": {"state": "STOPPED"}}`, want: false},
	{doc: ebAnythingBut, pattern: `{"data": {"detail": {"state": [{"anything-but": {"equals-ignore-case": ["Stopped", "overloaded"]}}]}}}`, data: ec2Event, want: true},
	{doc: rulerExample, pattern: `{"data": {"detail": {"state": [{"anything-but": {"prefix": ["init", "error"]}}]}}}`, data: `{"detail": {"state": "error-7"}}`, want: false},
	{doc: rulerExample, pattern: `{"data": {"detail": {"state": [{"anything-but": {"prefix": ["init", "error"]}}]}}}`, data: ec2Event, want: true},
	{doc: rulerExample, pattern: `{"data": {"detail": {"instance-id": [{"anything-but": {"suffix": ["1234", "6789"]}}]}}}`, data: `{"detail": {"instance-id": "i-6789"}}`, want: false},
	{doc: rulerExample, pattern: `{"data": {"detail": {"instance-id": [{"anything-but": {"suffix": ["1234", "6789"]}}]}}}`, data: ec2Event, want: true},
	// Anything-but matches values only: a missing field is not "anything".
	{doc: ebAnythingBut, pattern: `{"data": {"detail": {"mode": [{"anything-but": "initializing"}]}}}`, data: ec2Event, want: false},

	// Numeric matching, on the event-ruler README's EC2 event.
	{doc: ebNumeric, pattern: `{"data": {"detail": {"c-count": [{"numeric": [">", 0, "<=", 5]}], "d-count": [{"numeric": ["<", 10]}], "x-limit": [{"numeric": ["=", 3.018e2]}]}}}`, data: ec2Event, want: true},
	{doc: ebNumeric, pattern: `{"data": {"detail": {"c-count": [{"numeric": [">", 0, "<=", 4]}], "d-count": [{"numeric": ["<", 10]}]}}}`, data: ec2Event, want: false},
	{doc: ebNumeric, pattern: `{"data": {"detail": {"x-limit": [{"numeric": ["=", 3.018e2]}]}}}`, data: `{"detail": {"x-limit": 301.80}}`, want: true},
	{doc: ebNumeric, pattern: `{"data": {"detail": {"d-count": [{"numeric": [">=", 3]}]}}}`, data: ec2Event, want: true},
	{doc: ebNumeric, pattern: `{"data": {"detail": {"d-count": [{"numeric": ["<", 3]}]}}}`, data: ec2Event, want: false},
	{doc: ebNumeric, pattern: `{"data": {"detail": {"d-count": [{"numeric": [">", -1, "<=", 3]}]}}}`, data: ec2Event, want: true},
	// Exact number literals: event-ruler inserts "matchers for both the literal
	// expression and the ComparableNumber form", so 300 matches 300.0 and 3e2
	// (EventBridge's older page says they differ; its engine matches them).
	{doc: rulerNumbers, pattern: `{"data": {"x": [300]}}`, data: `{"x": 300}`, want: true},
	{doc: rulerNumbers, pattern: `{"data": {"x": [300]}}`, data: `{"x": 300.0}`, want: true},
	{doc: rulerNumbers, pattern: `{"data": {"x": [300]}}`, data: `{"x": 3e2}`, want: true},
	{doc: rulerNumbers, pattern: `{"data": {"x": [300]}}`, data: `{"x": 301}`, want: false},
	{doc: rulerNumbers, pattern: `{"data": {"account": [123456789012345678]}}`, data: `{"account": 123456789012345678}`, want: true},
	{doc: rulerNumbers, pattern: `{"data": {"account": [123456789012345678]}}`, data: `{"account": 123456789012345679}`, want: false},
	{doc: rulerNumbers, pattern: `{"data": {"account": [123456789012345678]}}`, data: `{"account": 1.23456789012345678e17}`, want: false},
	{doc: rulerNumbers, pattern: `{"data": {"x": [0.1]}}`, data: `{"x": 1e-1}`, want: true},
	{doc: rulerNumbers, pattern: `{"data": {"x": [1e300]}}`, data: `{"x": 1E+300}`, want: true},

	// Exists matching.
	{doc: ebExists, pattern: `{"data": {"detail": {"state": [{"exists": true}]}}}`, data: ec2Event, want: true},
	{doc: ebExists, pattern: `{"data": {"detail": {"state": [{"exists": true}]}}}`, data: `{"detail-type": ["EC2 Instance State-change Notification"], "detail": {"c-count": {"c1": 100}}}`, want: false},
	{doc: ebExists, pattern: `{"data": {"detail": {"c-count": [{"exists": false}]}}}`, data: `{"detail-type": ["EC2 Instance State-change Notification"], "detail": {"state": ["initializing", "running"]}}`, want: true},
	// "also matches [...] because c-count isn't a leaf node".
	{doc: ebExists, pattern: `{"data": {"detail": {"c-count": [{"exists": false}]}}}`, data: `{"detail": {"state": ["initializing", "running"], "c-count": {"c1": 100}}}`, want: true},
	{doc: ebExists, pattern: `{"data": {"detail": {"c-count": [{"exists": false}]}}}`, data: ec2Event, want: false},
	{doc: ebExists, pattern: `{"data": {"detail": {"c-count": [{"exists": false}]}}}`, data: `{"source": "aws.ec2"}`, want: true},

	// The complex example.
	{doc: ebComplex, pattern: `{"data": {"time": [{"prefix": "2017-10-02"}], "detail": {"state": [{"anything-but": "initializing"}], "c-count": [{"numeric": [">", 0, "<=", 5]}], "d-count": [{"numeric": ["<", 10]}], "x-limit": [{"anything-but": [100, 200, 300]}]}}}`, data: ec2Event, want: true},
	{doc: ebComplex, pattern: `{"data": {"time": [{"prefix": "2017-10-02"}], "detail": {"state": [{"anything-but": "running"}], "c-count": [{"numeric": [">", 0, "<=", 5]}]}}}`, data: ec2Event, want: false},
	// "if you include a key more than once the last reference will be the one used".
	{doc: ebDuplicate, pattern: `{"data": {"detail": {"location": [{"prefix": "us-"}], "location": [{"anything-but": "us-east"}]}}}`, data: `{"detail": {"location": "eu-west"}}`, want: true},
	{doc: ebDuplicate, pattern: `{"data": {"detail": {"location": [{"prefix": "us-"}], "location": [{"anything-but": "us-east"}]}}}`, data: `{"detail": {"location": "us-east"}}`, want: false},

	// $or.
	{doc: ebOr, pattern: `{"data": {"detail": {"$or": [{"c-count": [{"numeric": [">", 0, "<=", 5]}]}, {"d-count": [{"numeric": ["<", 10]}]}, {"x-limit": [{"numeric": ["=", 3.018e2]}]}]}}}`, data: `{"detail": {"c-count": 7, "d-count": 20, "x-limit": 301.8}}`, want: true},
	{doc: ebOr, pattern: `{"data": {"detail": {"$or": [{"c-count": [{"numeric": [">", 0, "<=", 5]}]}, {"d-count": [{"numeric": ["<", 10]}]}, {"x-limit": [{"numeric": ["=", 3.018e2]}]}]}}}`, data: `{"detail": {"c-count": 7, "d-count": 20, "x-limit": 300}}`, want: false},
	{doc: ebOr, pattern: `{"data": {"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPUUtilization", "ReadLatency"]}, {"namespace": ["AWS/EC2", "AWS/ES"]}]}}`, data: `{"source": "aws.cloudwatch", "namespace": "AWS/ES"}`, want: true},
	{doc: ebOr, pattern: `{"data": {"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPUUtilization", "ReadLatency"]}, {"namespace": ["AWS/EC2", "AWS/ES"]}]}}`, data: `{"source": "aws.s3", "namespace": "AWS/ES"}`, want: false},
	{doc: ebOr, pattern: `{"data": {"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPUUtilization"]}, {"metricType": ["MetricType"], "namespace": ["AWS/EC2"], "$or": [{"metricId": [1234]}, {"spaceId": [1000]}]}, {"scope": ["Service"]}]}}`,
		data: `{"source": "aws.cloudwatch", "metricType": "MetricType", "namespace": "AWS/EC2", "spaceId": 1000}`, want: true},
	{doc: ebOr, pattern: `{"data": {"source": ["aws.cloudwatch"], "$or": [{"metricName": ["CPUUtilization"]}, {"metricType": ["MetricType"], "namespace": ["AWS/EC2"], "$or": [{"metricId": [1234]}, {"spaceId": [1000]}]}, {"scope": ["Service"]}]}}`,
		data: `{"source": "aws.cloudwatch", "metricType": "MetricType", "namespace": "AWS/EC2", "spaceId": 1001}`, want: false},
	{doc: ebOr, pattern: `{"$or": [{"data": {"type": ["order.created"]}}, {"partitionKey": [{"prefix": "vip-"}]}]}`, data: `{"type": "order.cancelled"}`, pk: "vip-7", want: true},
	{doc: ebOr, pattern: `{"$or": [{"data": {"type": ["order.created"]}}, {"partitionKey": [{"prefix": "vip-"}]}]}`, data: `{"type": "order.cancelled"}`, pk: "std-7", want: false},

	// Metadata keys.
	{doc: metadata, pattern: `{"partitionKey": [{"prefix": "vip-"}]}`, data: kinesisOrder, pk: "vip-42", want: true},
	{doc: metadata, pattern: `{"partitionKey": [{"prefix": "vip-"}]}`, data: kinesisOrder, pk: "std-42", want: false},
	{doc: metadata, pattern: `{"partitionKey": [{"anything-but": ["a", "b"]}]}`, pk: "c", want: true},
	{doc: metadata, pattern: `{"partitionKey": [{"equals-ignore-case": "VIP"}]}`, pk: "vip", want: true},
	{doc: metadata, pattern: `{"sequenceNumber": ["49590338271490256608559692538361571095921575989136588898"]}`, seq: "49590338271490256608559692538361571095921575989136588898", want: true},
	{doc: metadata, pattern: `{"sequenceNumber": [{"prefix": "4959033827149025660855969254"}]}`, seq: "49590338271490256608559692538361571095921575989136588898", want: false},
	{doc: metadata, pattern: `{"approximateArrivalTimestamp": [{"numeric": [">=", 1545084650.987]}]}`, arrival: lambdaArrival, want: true},
	{doc: metadata, pattern: `{"approximateArrivalTimestamp": [{"numeric": [">", 1545084650.987]}]}`, arrival: lambdaArrival, want: false},
	{doc: metadata, pattern: `{"approximateArrivalTimestamp": [{"numeric": [">", 1545084650, "<", 1545084651]}]}`, arrival: lambdaArrival, want: true},
	{doc: metadata, pattern: `{"approximateArrivalTimestamp": [{"exists": false}]}`, want: true},
	{doc: metadata, pattern: `{"approximateArrivalTimestamp": [{"exists": true}]}`, want: false},
	{doc: metadata, pattern: `{"approximateArrivalTimestamp": [{"exists": true}]}`, arrival: lambdaArrival, want: true},
	{doc: metadata, pattern: `{"partitionKey": ["1"], "sequenceNumber": [{"exists": true}], "data": {"order": {"quantity": [{"numeric": [">=", 1000]}]}}}`, data: kinesisOrder, pk: "1", seq: "1", want: true},
}

// event-ruler's RulerTest.WHEN_WeTryAnythingButRules_THEN_Theywork, its
// rule under data and its events with their expected results: anything-but
// numbers matches a string ("b": "444" in the first event).
func init() {
	const rule = `{"data": {
		"a": [{"anything-but": ["dad0", "dad1", "dad2"]}],
		"b": [{"anything-but": [111, 222, 333]}],
		"c": [{"anything-but": "zdd"}],
		"d": [{"anything-but": 444}],
		"z": [{"numeric": [">", 0, "<", 1]}],
		"w": [{"anything-but": {"prefix": "zax"}}],
		"n": [{"anything-but": {"suffix": "ing"}}],
		"o": [{"anything-but": {"equals-ignore-case": "CamelCase"}}],
		"p": [{"anything-but": {"equals-ignore-case": ["CamelCase", "AbC"]}}]}}`
	const doc = "aws/event-ruler RulerTest: anything-but rules"
	for _, ev := range []struct {
		a, b, c, d, w, z, n, o, p string
		want                      bool
	}{
		{`"child1"`, `"444"`, `"child1"`, `123`, `"xaz"`, `0.001`, `"nomatch"`, `"nomatch"`, `"nomatch"`, true},
		{`"dad789"`, `789`, `"zdd"`, `123`, `"xaz"`, `0.001`, `"nomatch"`, `"nomatch"`, `"nomatch"`, false},
		{`"dad789"`, `789`, `"child1"`, `123`, `"xaz"`, `1.01`, `"nomatch"`, `"nomatch"`, `"nomatch"`, false},
		{`"dad1"`, `345`, `"child1"`, `123`, `"xaz"`, `0.001`, `"nomatch"`, `"nomatch"`, `"nomatch"`, false},
		{`"abc"`, `111`, `"child1"`, `123`, `"xaz"`, `0.001`, `"nomatch"`, `"nomatch"`, `"nomatch"`, false},
		{`"dad1"`, `333`, `"child1"`, `123`, `"xaz"`, `0.001`, `"nomatch"`, `"nomatch"`, `"nomatch"`, false},
		{`"abc"`, `0`, `"child1"`, `444`, `"xaz"`, `0.999999`, `"nomatch"`, `"nomatch"`, `"nomatch"`, false},
		{`"child1"`, `"444"`, `"child1"`, `123`, `"zaxonie"`, `0.001`, `"nomatch"`, `"nomatch"`, `"nomatch"`, false},
		{`"child1"`, `"444"`, `"child1"`, `123`, `"xaz"`, `0.001`, `"matching"`, `"nomatch"`, `"nomatch"`, false},
		{`"child1"`, `"444"`, `"child1"`, `123`, `"xaz"`, `0.001`, `"nomatch"`, `"camelcase"`, `"nomatch"`, false},
		{`"child1"`, `"444"`, `"child1"`, `123`, `"xaz"`, `0.001`, `"nomatch"`, `"nomatch"`, `"abc"`, false},
	} {
		data := `{"a": ` + ev.a + `, "b": ` + ev.b + `, "c": ` + ev.c + `, "d": ` + ev.d + `, "w": ` + ev.w +
			`, "z": ` + ev.z + `, "n": ` + ev.n + `, "o": ` + ev.o + `, "p": ` + ev.p + `}`
		conformanceRows = append(conformanceRows, conformanceRow{doc: doc, pattern: rule, data: data, want: ev.want})
	}
	// RulerTest.WHEN_WeTryReallySimpleRules_THEN_TheyWork.
	const simple = "aws/event-ruler RulerTest: really simple rules"
	for _, r := range []struct {
		rule, event string
		want        bool
	}{
		{`{"a": [1]}`, `{"a": 1}`, true},
		{`{"b": [2]}`, `{"b": 2}`, true},
		{`{"x": ["X"]}`, `{"x": "X"}`, true},
		{`{"a": [1]}`, `{"x": true}`, false},
		{`{"b": [2]}`, `{"x": true}`, false},
		{`{"x": ["X"]}`, `{"x": true}`, false},
	} {
		conformanceRows = append(conformanceRows, conformanceRow{doc: simple, pattern: `{"data": ` + r.rule + `}`, data: r.event, want: r.want})
	}
}

// event-ruler's RulerTest field-combination, array and exists tests, their
// rules under data.
func init() {
	const rfc = `{"Image": {"Width": 800, "Height": 600, "Title": "View from 15th Floor",
		"Thumbnail": {"Url": "http://www.example.com/image/481989943", "Height": 125, "Width": 100},
		"Animated": false, "IDs": [116, 943, 234, 38793]}}`
	const arrays = `{"employees": [
		[{"firstName": "John", "lastName": "Doe", "ids": [1234, 1000, 9999]}, {"firstName": "Anna", "lastName": "Smith"}],
		[{"firstName": "Peter", "lastName": "Jones", "ids": []}]]}`
	for _, r := range []struct {
		doc, rule, event string
		want             bool
	}{
		{"combos", `{"Image": {"Width": [800], "Thumbnail": {"Height": [125, 300]}}}`, rfc, true},
		{"combos", `{"Image": {"Thumbnail": {"Url": [{"prefix": "http"}]}}}`, rfc, true},
		{"combos", `{"Image": {"Title": [{"prefix": {"equals-ignore-case": "VIeW"}}]}}`, rfc, true},
		{"combos", `{"Image": {"Title": [{"suffix": {"equals-ignore-case": "LoOr"}}]}}`, rfc, true},
		{"combos", `{"Image": {"Title": [{"suffix": "loor"}]}}`, rfc, true},
		{"combos", `{"Image": {"Width": [{"numeric": ["<", 1000]}], "Height": [{"numeric": ["<=", 600]}], "Title": [{"anything-but": "View from 15th Flood"}],
			"Thumbnail": {"Url": [{"prefix": "http"}], "Height": [{"numeric": [">", 124, "<", 126]}], "Width": [{"numeric": [">=", 99.999, "<=", 100]}]}, "Animated": [false]}}`, rfc, true},
		{"combos", `{"Image": {"Width": [{"numeric": ["<", 800]}]}}`, rfc, false},
		{"combos", `{"Image": {"Height": [{"numeric": ["<", 599]}]}}`, rfc, false},
		{"combos", `{"Image": {"Title": [{"anything-but": "View from 15th Floor"}]}}`, rfc, false},
		{"combos", `{"Image": {"Thumbnail": {"Url": [{"prefix": "https"}]}}}`, rfc, false},
		{"combos", `{"Image": {"Thumbnail": {"Height": [{"numeric": [">", 124, "<", 125]}]}}}`, rfc, false},
		{"combos", `{"Image": {"Thumbnail": {"Width": [{"numeric": [">=", 100.00001, "<=", 1001]}]}}}`, rfc, false},
		{"combos", `{"Image": {"Animated": [true]}}`, rfc, false},
		{"arrays", `{"employees": {"firstName": ["Anna"]}}`, arrays, true},
		{"arrays", `{"employees": {"firstName": ["John"], "ids": [1000]}}`, arrays, true},
		{"arrays", `{"employees": {"firstName": ["Anna"], "ids": [{"exists": false}]}}`, arrays, true},
		{"arrays", `{"employees": {"firstName": ["Alice"]}}`, arrays, false},
		{"arrays", `{"employees": {"firstName": ["Anna"], "lastName": ["Jones"]}}`, arrays, false},
		{"arrays", `{"employees": {"firstName": ["Alice"], "lastName": ["Bob"]}}`, arrays, false},
		{"arrays", `{"a": ["b"]}`, arrays, false},
		{"arrays", `{"employees": ["b"]}`, arrays, false},
		{"arrays", `{"employees": {"firstName": ["Anna"], "ids": [1000]}}`, arrays, false},
		{"arrays", `{"employees": {"firstName": ["Anna"], "ids": [{"exists": true}]}}`, arrays, false},
		{"exists", `{"a": [{"exists": true}]}`, `{"a": 1}`, true},
		{"exists", `{"b": [{"exists": false}]}`, `{"a": 1}`, true},
		{"exists", `{"x": [{"exists": true}]}`, `{"a": 1}`, false},
		{"exists", `{"x": [{"exists": false}]}`, `{"a": 1}`, true},
		{"exists", `{"a": [{"exists": true}]}`, `{"b": 2}`, false},
		{"exists", `{"b": [{"exists": false}]}`, `{"b": 2}`, false},
		{"exists", `{"x": [{"exists": true}]}`, `{"b": 2}`, false},
		{"exists", `{"x": [{"exists": false}]}`, `{"b": 2}`, true},
		{"exists", `{"a": [{"exists": true}]}`, `{"x": "X"}`, false},
		{"exists", `{"b": [{"exists": false}]}`, `{"x": "X"}`, true},
		{"exists", `{"x": [{"exists": true}]}`, `{"x": "X"}`, true},
		{"exists", `{"x": [{"exists": false}]}`, `{"x": "X"}`, false},
	} {
		conformanceRows = append(conformanceRows, conformanceRow{doc: "aws/event-ruler RulerTest: " + r.doc, pattern: `{"data": ` + r.rule + `}`, data: r.event, want: r.want})
	}
}

func TestConformance(t *testing.T) {
	for i, row := range conformanceRows {
		p, err := Parse(row.pattern)
		if err != nil {
			t.Fatalf("row %d (%s): Parse(%s): %v", i, row.doc, row.pattern, err)
		}
		in := &Input{
			Data:           []byte(row.data),
			JSON:           gjson.Valid(row.data),
			PartitionKey:   row.pk,
			SequenceNumber: row.seq,
			ArrivalTime:    row.arrival,
		}
		if got := p.Match(in); got != row.want {
			t.Errorf("row %d (%s):\npattern %s\ndata    %s\nmatch = %v, want %v", i, row.doc, row.pattern, row.data, got, row.want)
		}
		if got := (Filter{p}).Match(in); got != row.want {
			t.Errorf("row %d: Filter.Match = %v, want %v", i, got, row.want)
		}
	}
	t.Logf("%d conformance rows", len(conformanceRows))
}
